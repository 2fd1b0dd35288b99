"""Run ``torch.autograd.gradcheck`` and ``gradgradcheck`` in float64 and print one stable row.

``gradcheck`` builds a function's Jacobian twice, from finite differences and from its backward
pass, and compares them; ``gradgradcheck`` does the same for the backward pass itself (double
backward). Both need float64: with float32, finite differences are too noisy to compare.

Scale: finite differences with a fixed step and fixed tolerances fail right functions at large
inputs (rounding swamps the step) and pass wrong ones at small inputs (the tolerance swamps the
gradient). So :func:`check_function` checks the function in units of its own inputs and outputs:
every input element ``x_i`` is written ``s_i * u_i`` with ``s_i`` the power of two nearest to
``max(|x_i|, rms(x))``, every output is divided by the power of two nearest to its largest
magnitude ``t``, and gradcheck runs on ``u -> f(s * u) / t`` at ``u = x / s``. Powers of two make
this exact in floating point; the backward pass under test is the function's own, called with the
upstream gradient divided by ``t``. So ``eps`` is a step relative to each input element and
``atol``/``rtol`` apply to the Jacobian in those units, and the defaults hold from tiny to large
inputs.

The printed row never shows a full-precision number (torch's own failure report prints whole
Jacobians, whose last digits vary from machine to machine): it says which check passed or failed;
for a failure, torch's one-line reason and the likely cause (scale, a kink, NaN or the derivation)
follow on lines of their own. The full report stays available as ``.detail``.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch.autograd.gradcheck import GradcheckError

from ._printed import PrintedResult, format_shape
from ._gradcheck_diagnosis import _diagnose, _directional_mismatch, _non_finite
from ._validate import is_real_number, require_dense

__all__ = ["GradcheckReport", "check_function", "check_function_cases"]

_HINTS = {
    "the derivation": (
        "The backward pass disagrees with finite differences at inputs where the function is smooth "
        "and finite. Check that every returned gradient multiplies grad_output by the local "
        "derivative and is summed back to its input's shape."),
    "a kink": (
        "An input sits on a kink (ReLU at 0, a tie in a max, |x| at 0), where finite differences "
        "average the two one-sided slopes and no backward pass can match them. Check at inputs "
        "away from kinks."),
    "NaN": (
        "A NaN or an infinity makes every comparison fail: use finite inputs, and inputs at which "
        "the function and its backward pass stay finite (no log of 0, no overflowing exp)."),
    "scale": (
        "Finite differences are dominated by rounding here: the function's value is much larger "
        "than its change across a step (a large offset, inputs of very different magnitudes in "
        "one tensor). Check at inputs of similar magnitude, or subtract the offset inside fn."),
    "an error in backward": (
        "The backward pass raised this error while being checked: check that it returns one "
        "gradient per input of forward, each with its input's shape (None for inputs without a "
        "gradient)."),
    "double backward": (
        "The backward pass is not differentiable as written: build it from differentiable torch "
        "operations on the saved tensors and grad_output (no .detach(), NumPy or in-place writes). "
        "If it cannot be (a backward marked @once_differentiable), pass second_order=False."),
}


@dataclass(frozen=True, repr=False)
class GradcheckReport(PrintedResult):
    """The outcome of :func:`check_function` (what it printed, as data).

    ``gradcheck`` is ``"ok"`` or ``"FAILED"``; ``gradgradcheck`` is ``"ok"``, ``"FAILED"``,
    ``"skipped"`` (not run because gradcheck failed) or ``"off"`` (``second_order=False``).
    ``reason`` is the one-line reason for a failure (torch's, without numbers; ``""`` when all
    passed); ``cause`` is the likely cause of a failure: ``"the derivation"``, ``"a kink"``,
    ``"NaN"``, ``"scale"``, ``"an error in backward"`` or ``"double backward"`` (``""`` when all
    passed). ``detail`` is torch's full message, which may contain full-precision numbers and is
    never printed. ``shapes`` are the shapes of the inputs that were checked.
    """

    name: str
    shapes: tuple
    gradcheck: str
    gradgradcheck: str
    reason: str = ""
    detail: str = ""
    cause: str = ""

    @property
    def ok(self) -> bool:
        return self.gradcheck == "ok" and self.gradgradcheck in ("ok", "off")

    def row(self) -> str:
        shapes = ", ".join(format_shape(s) for s in self.shapes)
        line = f"{self.name:<18} {shapes:<20} gradcheck {self.gradcheck:<6}  gradgradcheck {self.gradgradcheck}"
        if self.reason:
            line += "\n" + _clip(f"  reason: {self.reason}")
        if self.cause:
            line += "\n" + _clip(f"  likely cause: {self.cause}")
        return line


def _clip(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[:width - 4].rsplit(" ", 1)[0] + " ..."


def _reason(err: BaseException) -> str:
    """torch's first line, without numbers that vary (GradcheckError puts its Jacobians after it)."""
    lines = str(err).strip().splitlines()
    first = lines[0].strip().rstrip(",") if lines else ""
    if not isinstance(err, GradcheckError):
        first = f"{type(err).__name__}: {first}"
    if len(first) > 100:
        first = first[:97].rsplit(" ", 1)[0] + " ..."
    return first


_MISSING = object()


def _pow2(magnitude: torch.Tensor) -> torch.Tensor:
    """The power of two nearest to each (positive, finite) magnitude; 1 elsewhere."""
    ok = torch.isfinite(magnitude) & (magnitude > 0)
    safe = torch.where(ok, magnitude, torch.ones_like(magnitude))
    return torch.where(ok, torch.exp2(torch.round(torch.log2(safe))), torch.ones_like(magnitude))


def _input_scale(x: torch.Tensor) -> torch.Tensor:
    """Per element: the power of two nearest to max(|x_i|, rms(x))."""
    a = x.abs()
    finite = torch.where(torch.isfinite(a), a, torch.zeros_like(a))
    largest = finite.max() if finite.numel() else finite.new_zeros(())
    if finite.numel() == 0 or largest == 0:
        return torch.ones_like(x)
    rms = largest * (finite / largest).square().mean().sqrt()
    return _pow2(torch.maximum(finite, rms))


def _output_scale(out: torch.Tensor) -> float:
    finite = out.detach().abs()
    finite = finite[torch.isfinite(finite)]
    if finite.numel() == 0:
        return 1.0
    return float(_pow2(finite.max()))


def _prepare(inputs: tuple, name: str) -> tuple[list, list[tuple], list]:
    """float64 copies of the floating inputs (others passed through), their shapes and scales."""
    prepared, shapes, scales = [], [], []
    for i, value in enumerate(inputs):
        if isinstance(value, torch.Tensor):
            require_dense(value, f"check_function({name!r}): input {i}")
        if isinstance(value, torch.Tensor) and value.is_complex():
            raise TypeError(f"check_function({name!r}): input {i} is complex ({value.dtype}); "
                            "gradlab checks real floating-point inputs only.")
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            x = value.detach().to(torch.float64).clone()
            prepared.append(x)
            shapes.append(tuple(value.shape))
            scales.append(_input_scale(x))
        else:
            prepared.append(value)   # ints, integer tensors, None...: passed through, not checked
            scales.append(None)
    if not shapes:
        kinds = ", ".join(type(v).__name__ if not isinstance(v, torch.Tensor) else f"Tensor({v.dtype})"
                          for v in inputs) or "nothing"
        raise ValueError(
            f"check_function({name!r}): no input is a floating-point tensor (got {kinds}), so there is no "
            f"gradient to check. Pass the tensors to differentiate, e.g. check_function(Mul, a, b) with "
            f"a = torch.randn(3, dtype=torch.float64)."
        )
    return prepared, shapes, scales


def _check_tolerances(name: str, eps, atol, rtol) -> tuple[float, float, float]:
    values = []
    for arg, value, positive in (("eps", eps, True), ("atol", atol, False), ("rtol", rtol, False)):
        ok = is_real_number(value) and math.isfinite(float(value)) and (float(value) > 0 if positive
                                                                         else float(value) >= 0)
        if not ok:
            need = "a positive" if positive else "a non-negative"
            raise ValueError(f"check_function({name!r}): {arg} must be {need} finite number, got {value!r}; "
                             f"the defaults (eps=1e-6, atol=1e-5, rtol=1e-3) suit float64.")
        values.append(float(value))
    return tuple(values)


def _check_arity(fn, call: Callable, inputs: tuple, name: str) -> None:
    """A clear error when the inputs do not fit forward's parameters (before torch's bare TypeError)."""
    is_function = isinstance(fn, type) and issubclass(fn, torch.autograd.Function)
    target = fn.forward if is_function else call
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return   # a builtin without a signature: let the call speak for itself
    params = list(signature.parameters.values())
    if is_function and fn.setup_context is torch.autograd.Function.setup_context and params:
        params = params[1:]   # the classic style: forward(ctx, ...)
    try:
        inspect.Signature(params).bind(*inputs)
    except TypeError:
        names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = [p.name for p in params if p.default is p.empty
                    and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
        where = f"{name}.forward" if is_function else name
        wanted = (f"at least {len(required)}" if varargs else
                  f"{len(required)}" if len(required) == len(names) else f"{len(required)} to {len(names)}")
        listing = ", ".join(names)
        raise TypeError(
            f"check_function({name!r}): {where} takes {wanted} input(s) ({listing}) but {len(inputs)} "
            f"were given. Pass every input of forward after the function, in order: "
            f"check_function({name}, {listing})."
        ) from None


def _check_outputs(out, name: str) -> None:
    """The forward pass must return tensors, at least one of which autograd can differentiate."""
    outputs = out if isinstance(out, (tuple, list)) else (out,)
    for k, o in enumerate(outputs):
        if not isinstance(o, torch.Tensor):
            where = f"output {k} is" if isinstance(out, (tuple, list)) else "it returned"
            raise TypeError(f"check_function({name!r}): fn must return a tensor or a tuple of tensors, but {where} "
                            f"{type(o).__name__}. Return torch tensors (no .item(), .tolist() or NumPy).")
    if not any(o.requires_grad for o in outputs):
        raise ValueError(
            f"check_function({name!r}): no output of fn requires grad, so there is no backward pass to check. "
            f"The output does not depend on the floating-point inputs through autograd: it is a constant, an "
            f"integer result, or was computed with .detach(), NumPy or under torch.no_grad(). Build it from the "
            f"inputs with torch operations, or inside a torch.autograd.Function."
        )


def _scaled(call: Callable, scales: list, out_scales: list, as_tuple: bool) -> Callable:
    """``u -> call(s * u) / t``: the function in units of its inputs and outputs."""

    def normalised(*args):
        real = [a * s if s is not None else a for a, s in zip(args, scales)]
        out = call(*real)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        outs = tuple(o / t if t != 1.0 and o.is_floating_point() else o for o, t in zip(outs, out_scales))
        return outs if as_tuple else outs[0]

    return normalised


def _double_backward_error(call: Callable, prepared: list) -> Exception | None:
    """Differentiate the backward pass once, as a user would; return the error it raises, if any.

    gradgradcheck reports a backward marked ``@once_differentiable`` as a Jacobian mismatch (its
    second derivative looks like zero); differentiating it directly raises torch's clearer error.
    """
    leaves = [p for p in prepared if isinstance(p, torch.Tensor) and p.requires_grad]
    try:
        outputs = call(*prepared)
        outputs = [o for o in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))
                   if isinstance(o, torch.Tensor) and o.requires_grad]
        upstream = [torch.ones_like(o, requires_grad=True) for o in outputs]
        grads = torch.autograd.grad(outputs, leaves, upstream, create_graph=True, allow_unused=True)
        total = sum((g * g).sum() for g in grads if g is not None and g.requires_grad)
        if isinstance(total, torch.Tensor):
            total.backward()   # not autograd.grad: it would prune the node that raises
    except Exception as err:
        return err
    finally:
        for leaf in leaves:
            leaf.grad = None
    return None


def check_function(fn=_MISSING, *inputs, name: str | None = None, second_order: bool = True,
                   raise_on_failure: bool = True, eps: float = 1e-6, atol: float = 1e-5,
                   rtol: float = 1e-3, cases: Callable | None = None,
                   reference: Callable | None = None, seeds=(0, 1, 2), rules=None,
                   forbid_ops: tuple = ()):
    """Gradcheck (and gradgradcheck) ``fn`` at ``inputs`` in float64; print one row; raise on failure.

    ``fn`` is a ``torch.autograd.Function`` subclass (its ``apply`` is checked) or any function of
    the inputs returning a tensor or a tuple of tensors. Every floating-point tensor among
    ``inputs`` (any shape, finite values) is copied to float64 with ``requires_grad=True`` and
    checked; other arguments (ints such as a ``dim``, integer tensors) are passed through unchanged.
    The caller's tensors are never modified.

    Runs ``torch.autograd.gradcheck``, then, if it passed and ``second_order`` is true,
    ``torch.autograd.gradgradcheck``, both on the function in units of its inputs and outputs (see
    the module docstring): ``eps`` is a step relative to each input element, ``atol`` and ``rtol``
    apply in those units, so the defaults suit inputs from 1e-3 to 1e6. Returns a
    :class:`GradcheckReport`; raises ``AssertionError`` naming the function, the failed check and
    its likely cause (scale, a kink, NaN or the derivation) unless ``raise_on_failure=False``.
    Raises ``TypeError`` / ``ValueError`` before checking anything when there is nothing to check:
    no floating-point input, too few or too many inputs for ``forward``, an output that is not a
    tensor, or no output that requires grad.

    An exercise's check: ``check_function(Fn, cases=make_inputs, reference=plain_fn)`` (no
    ``inputs``) judges ``Fn`` on fresh inputs, one per seed, with :func:`check_function_cases`
    and returns its truthy-or-falsy result; it prints rows and never raises on a wrong answer.
    ``rules=`` and ``forbid_ops=`` (with ``cases=`` only) say what the exercise forbids; see
    :func:`check_function_cases`.
    """
    if fn is _MISSING:
        raise TypeError("check_function: pass the function to check first, then its inputs, e.g. "
                        "check_function(Mul, a, b) for a torch.autograd.Function Mul.")
    if cases is not None or reference is not None:
        if inputs or cases is None or reference is None:
            raise TypeError("check_function: pass either inputs, or cases= and reference= (a function "
                            "making fresh inputs from a generator and the same function in plain torch), "
                            "not both.")
        return check_function_cases(fn, cases, reference, seeds=seeds, second_order=second_order,
                                    rules=rules, forbid_ops=forbid_ops)
    if rules is not None or forbid_ops:
        raise TypeError("check_function: rules= and forbid_ops= judge an exercise; pass them with "
                        "cases= and reference=.")
    if isinstance(fn, type) and issubclass(fn, torch.autograd.Function):
        call: Callable = fn.apply
        default_name = fn.__name__
    elif callable(fn):
        call = fn
        default_name = getattr(fn, "__name__", type(fn).__name__)
    else:
        raise TypeError(f"check_function: fn must be a torch.autograd.Function subclass or a function, "
                        f"got {type(fn).__name__}.")
    if name is None:
        name = default_name
    if not isinstance(name, str):
        raise TypeError(f"check_function: name must be a string label for the row, got {type(name).__name__}.")
    eps, atol, rtol = _check_tolerances(name, eps, atol, rtol)
    prepared, shapes, scales = _prepare(inputs, name)
    _check_arity(fn, call, inputs, name)

    # A forward pass first, at the caller's values: an error here is the caller's to see, unchanged.
    leaves = [p.clone().requires_grad_(True) if s is not None else p for p, s in zip(prepared, scales)]
    out = call(*leaves)
    _check_outputs(out, name)
    as_tuple = isinstance(out, (tuple, list))
    outs = out if as_tuple else (out,)
    out_scales = [_output_scale(o) if o.is_floating_point() else 1.0 for o in outs]
    g = _scaled(call, scales, out_scales, as_tuple)
    units = [(p / s).requires_grad_(True) if s is not None else p for p, s in zip(prepared, scales)]

    first, second, reason, detail, cause = "ok", ("ok" if second_order else "off"), "", "", ""
    failed_err: BaseException | None = None
    nan = _non_finite(prepared, outs)
    kwargs = dict(eps=eps, atol=atol, rtol=rtol, raise_exception=True)
    if nan:
        first, second, reason, cause = "FAILED", "skipped", nan, "NaN"
    else:
        try:
            torch.autograd.gradcheck(g, tuple(units), **kwargs)
            wrong = _directional_mismatch(g, units, eps, rtol=max(rtol, 1e-3))
            if wrong is not None:
                raise GradcheckError(
                    f"Jacobian mismatch for input {wrong} at its own scale (a directional check)\n"
                    f"Its effect on the outputs is below atol of their size, so gradcheck's tolerance "
                    f"could not see it; along a random direction of input {wrong}, the backward pass "
                    f"and finite differences disagree by more than rtol.")
        except Exception as err:   # GradcheckError, or an error raised by backward
            first, second, reason, detail, failed_err = "FAILED", "skipped", _reason(err), str(err), err
            if isinstance(err, GradcheckError):
                cause, why = _diagnose(g, units, eps, atol, rtol)
                detail = f"{detail}\n\nLikely cause: {cause}: {why}"
            else:
                cause = "an error in backward"
    if first == "ok" and second_order:
        try:
            torch.autograd.gradgradcheck(g, tuple(units), **kwargs)
        except Exception as err:
            second, reason, detail, failed_err = "FAILED", _reason(err), str(err), err
            cause = "double backward"
            direct = _double_backward_error(g, units) if isinstance(err, GradcheckError) else None
            if direct is not None:
                reason, failed_err = _reason(direct), direct
                detail = f"{detail}\n\nDifferentiating the backward pass directly raised: {direct}"

    report = GradcheckReport(name, tuple(shapes), first, second, reason, detail, cause)
    print(report.row())
    if not report.ok and raise_on_failure:
        which = "gradcheck" if first == "FAILED" else "gradgradcheck"
        raise AssertionError(
            f"check_function({name!r}): {which} failed: {reason}\n"
            f"  inputs checked (float64): {', '.join(format_shape(s) for s in shapes)}\n"
            f"  likely cause: {cause}. {_HINTS[cause]}\n"
            f"  For torch's full report, pass raise_on_failure=False and print the result's .detail."
        ) from None
    return report


# The exercise form, check_function(Fn, cases=..., reference=...), lives in its own module; it
# imports this one, so it is imported last (every name it uses is defined above).
from .function_cases import check_function_cases  # noqa: E402

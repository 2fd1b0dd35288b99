"""Run ``torch.autograd.gradcheck`` and ``gradgradcheck`` in float64 and print one stable row.

``gradcheck`` builds a function's Jacobian twice, from finite differences and from its backward
pass, and compares them; ``gradgradcheck`` does the same for the backward pass itself (double
backward). Both need float64: with float32, finite differences are too noisy to compare.

The printed row never shows a full-precision number (torch's own failure report prints whole
Jacobians, whose last digits vary from machine to machine): it says which check passed or failed
and, for a failure, torch's one-line reason. The full report stays available as ``.detail``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch.autograd.gradcheck import GradcheckError

from ._printed import PrintedResult, format_shape

__all__ = ["GradcheckReport", "check_function"]

_HINT_FIRST = (
    "The backward pass disagrees with finite differences. Check that every returned gradient "
    "multiplies grad_output by the local derivative and is summed back to its input's shape, and "
    "that no input sits on a kink (ReLU at 0, a tie in a max), where finite differences average the "
    "two one-sided slopes."
)
_HINT_SECOND = (
    "The backward pass is not differentiable as written: build it from differentiable torch "
    "operations on the saved tensors and grad_output (no .detach(), NumPy or in-place writes). If it "
    "cannot be (a backward marked @once_differentiable), pass second_order=False."
)
_HINT_ERROR = (
    "The backward pass raised this error while being checked: check that it returns one gradient "
    "per input of forward, each with its input's shape (None for inputs without a gradient)."
)


@dataclass(frozen=True, repr=False)
class GradcheckReport(PrintedResult):
    """The outcome of :func:`check_function` (what it printed, as data).

    ``gradcheck`` is ``"ok"`` or ``"FAILED"``; ``gradgradcheck`` is ``"ok"``, ``"FAILED"``,
    ``"skipped"`` (not run because gradcheck failed) or ``"off"`` (``second_order=False``).
    ``reason`` is torch's one-line reason for a failure (``""`` when all passed); ``detail`` is
    torch's full message, which may contain full-precision numbers and is never printed.
    ``shapes`` are the shapes of the inputs that were checked.
    """

    name: str
    shapes: tuple
    gradcheck: str
    gradgradcheck: str
    reason: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.gradcheck == "ok" and self.gradgradcheck in ("ok", "off")

    def row(self) -> str:
        shapes = ", ".join(format_shape(s) for s in self.shapes)
        line = f"{self.name:<18} {shapes:<20} gradcheck {self.gradcheck:<6}  gradgradcheck {self.gradgradcheck}"
        if self.reason:
            line += f"  ({self.reason})"
        return line


def _reason(err: BaseException) -> str:
    """torch's first line, without numbers that vary (GradcheckError puts its Jacobians after it)."""
    lines = str(err).strip().splitlines()
    first = lines[0].strip().rstrip(",") if lines else ""
    if not isinstance(err, GradcheckError):
        first = f"{type(err).__name__}: {first}"
    if len(first) > 100:
        first = first[:97].rsplit(" ", 1)[0] + " ..."
    return first


def _prepare(inputs: tuple, name: str) -> tuple[list, list[tuple]]:
    prepared, shapes = [], []
    for i, value in enumerate(inputs):
        if isinstance(value, torch.Tensor) and value.is_complex():
            raise TypeError(f"check_function({name!r}): input {i} is complex ({value.dtype}); "
                            "gradlab checks real floating-point inputs only.")
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            prepared.append(value.detach().to(torch.float64).clone().requires_grad_(True))
            shapes.append(tuple(value.shape))
        else:
            prepared.append(value)   # ints, integer tensors, None...: passed through, not checked
    if not shapes:
        kinds = ", ".join(type(v).__name__ if not isinstance(v, torch.Tensor) else f"Tensor({v.dtype})"
                          for v in inputs) or "nothing"
        raise ValueError(
            f"check_function({name!r}): no input is a floating-point tensor (got {kinds}), so there is no "
            f"gradient to check. Pass the tensors to differentiate, e.g. check_function(Mul, a, b) with "
            f"a = torch.randn(3, dtype=torch.float64)."
        )
    return prepared, shapes


def _check_tolerances(name: str, eps, atol, rtol) -> None:
    for arg, value, positive in (("eps", eps, True), ("atol", atol, False), ("rtol", rtol, False)):
        ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
              and (value > 0 if positive else value >= 0))
        if not ok:
            need = "a positive" if positive else "a non-negative"
            raise ValueError(f"check_function({name!r}): {arg} must be {need} finite number, got {value!r}; "
                             f"the defaults (eps=1e-6, atol=1e-5, rtol=1e-3) suit float64.")


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


def check_function(fn, *inputs, name: str | None = None, second_order: bool = True,
                   raise_on_failure: bool = True, eps: float = 1e-6, atol: float = 1e-5,
                   rtol: float = 1e-3) -> GradcheckReport:
    """Gradcheck (and gradgradcheck) ``fn`` at ``inputs`` in float64; print one row; raise on failure.

    ``fn`` is a ``torch.autograd.Function`` subclass (its ``apply`` is checked) or any function of
    the inputs returning a tensor or a tuple of tensors. Every floating-point tensor among
    ``inputs`` (any shape) is copied to float64 with ``requires_grad=True`` and checked; other
    arguments (ints such as a ``dim``, integer tensors) are passed through unchanged. The caller's
    tensors are never modified.

    Runs ``torch.autograd.gradcheck``, then, if it passed and ``second_order`` is true,
    ``torch.autograd.gradgradcheck`` (``eps``, ``atol``, ``rtol`` are passed to both). Returns a
    :class:`GradcheckReport`; raises ``AssertionError`` naming the function and the failed check
    unless ``raise_on_failure=False``. Choose inputs away from kinks (ReLU at 0, ties in a max).
    Raises ``TypeError`` / ``ValueError`` before checking anything when there is nothing to check:
    no floating-point input, an output that is not a tensor, or no output that requires grad.
    """
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
    _check_tolerances(name, eps, atol, rtol)
    prepared, shapes = _prepare(inputs, name)

    # A forward pass first: an error here is the caller's to see, unchanged.
    _check_outputs(call(*prepared), name)
    kwargs = dict(eps=eps, atol=atol, rtol=rtol, raise_exception=True)
    first, second, reason, detail, failed_err = "ok", ("ok" if second_order else "off"), "", "", None
    try:
        torch.autograd.gradcheck(call, tuple(prepared), **kwargs)
    except Exception as err:   # GradcheckError, or an error raised by backward
        first, second, reason, detail, failed_err = "FAILED", "skipped", _reason(err), str(err), err
    if first == "ok" and second_order:
        try:
            torch.autograd.gradgradcheck(call, tuple(prepared), **kwargs)
        except Exception as err:
            second, reason, detail, failed_err = "FAILED", _reason(err), str(err), err
            direct = _double_backward_error(call, prepared) if isinstance(err, GradcheckError) else None
            if direct is not None:
                reason, failed_err = _reason(direct), direct
                detail = f"{detail}\n\nDifferentiating the backward pass directly raised: {direct}"

    report = GradcheckReport(name, tuple(shapes), first, second, reason, detail)
    print(report.row())
    if not report.ok and raise_on_failure:
        which = "gradcheck" if first == "FAILED" else "gradgradcheck"
        if first == "FAILED":
            hint = _HINT_FIRST if isinstance(failed_err, GradcheckError) else _HINT_ERROR
        else:
            hint = _HINT_SECOND
        raise AssertionError(
            f"check_function({name!r}): {which} failed: {reason}\n"
            f"  inputs checked (float64): {', '.join(format_shape(s) for s in shapes)}\n"
            f"  {hint}\n"
            f"  For torch's full report, pass raise_on_failure=False and print the result's .detail."
        ) from None
    return report

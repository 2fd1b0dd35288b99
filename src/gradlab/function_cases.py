"""A learner's ``torch.autograd.Function`` judged on fresh cases: forward, backward, then gradcheck.

:func:`check_function_cases` is what ``check_function(Fn, cases=..., reference=...)`` runs for an
exercise: for each seed it makes inputs, compares the Function's forward values and gradients with
a plain reference function's under autograd, and then runs gradcheck and gradgradcheck on them,
printing shapes and verdicts, never a value. ``rules=`` and ``forbid_ops=`` say what the exercise
forbids.
"""
from __future__ import annotations

import contextlib
import io
from typing import Callable

import torch

from ._printed import format_shape
from .gradient_check import GradcheckReport, check_function

__all__ = ["check_function_cases"]


def _quiet_check(fn, inputs: tuple) -> GradcheckReport:
    with contextlib.redirect_stdout(io.StringIO()):
        return check_function(fn, *inputs, raise_on_failure=False)


def check_function_cases(fn, make_inputs: Callable, reference: Callable, *,
                         seeds=(0, 1, 2), second_order: bool = True, rules=None,
                         forbid_ops: tuple = ()):
    """Judge a learner's ``torch.autograd.Function`` on fresh inputs; print rows, never values.

    For each seed, ``make_inputs(torch.Generator().manual_seed(seed))`` returns a tuple of
    float64 tensors (include large ones where the exercise asks for stability);
    ``reference(*inputs)`` computes the same function with plain torch operations, so autograd
    gives the expected gradients. Each case checks, in order: the forward values (``inf``/NaN where
    the reference is finite means an overflow), the gradients for a random upstream gradient, then
    :func:`check_function` (gradcheck and, if ``second_order``, gradgradcheck) at the case's
    inputs. Stops at the first failing case and prints its input shapes, one row per check and a
    hint; returns a truthy :class:`gradlab.exercises.CheckResult` when every case passes.

    What the exercise forbids is watched while ``fn``'s forward and backward run on each case:
    ``rules`` (a :class:`gradlab.rules.Rules`; default ``Rules(autograd=False)``: no autograd
    call inside the Function) and ``forbid_ops``, names of ATen operators (e.g.
    ``("softplus", "logaddexp")``: torch's own version of the function), however they are called.
    Each broken rule is a row, and the case fails.
    """
    from .exercises import CODE_RTOL, CheckResult, _tensor_verdict
    from .rules import Rules, watch

    rules = Rules() if rules is None else rules
    forbid_ops = ((forbid_ops,) if isinstance(forbid_ops, str) else tuple(forbid_ops)) + rules.forbid_ops

    if not (isinstance(fn, type) and issubclass(fn, torch.autograd.Function)):
        raise TypeError(f"check_function_cases: fn must be a torch.autograd.Function subclass (the class "
                        f"itself, not fn.apply), got {type(fn).__name__}.")
    name = fn.__name__
    if fn.forward is torch.autograd.Function.forward or fn.backward is torch.autograd.Function.backward:
        message = (f"{name}: no answer yet: write forward, setup_context and backward, "
                   f"then run the check again")
        print(message)
        return CheckResult(False, message)
    seeds = tuple(seeds)
    for i, seed in enumerate(seeds, 1):
        inputs = tuple(make_inputs(torch.Generator().manual_seed(seed)))
        largest = max(float(t.detach().abs().max()) for t in inputs)
        head = (f"{name}, case {i} of {len(seeds)}: "
                + ", ".join(format_shape(t.shape) for t in inputs) + f", |inputs| up to {largest:.3g}")
        rows, hint = [], ""
        ref_leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
        expected = reference(*ref_leaves)
        upstream = torch.randn(expected.shape, generator=torch.Generator().manual_seed(100 + seed),
                               dtype=expected.dtype)
        expected_grads = torch.autograd.grad(expected, ref_leaves, upstream, allow_unused=True,
                                             retain_graph=True)
        # the local derivative alone (upstream all ones): what a backward ignoring dout returns
        local_grads = torch.autograd.grad(expected, ref_leaves, torch.ones_like(expected),
                                          allow_unused=True)
        sent = upstream.clone()
        leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
        # forbidden operators: forward and backward; everything else: forward only (the check's
        # own autograd.grad would count as the learner's)
        with watch(Rules(autograd=True, forbid_ops=forbid_ops), {}) as ops:
            with watch(rules, dict(enumerate(inputs))) as broken:
                out = fn.apply(*leaves)
            grads = (torch.autograd.grad(out, leaves, upstream, allow_unused=True)
                     if isinstance(out, torch.Tensor) and out.requires_grad else None)
        broken = broken + [op for op in ops if op not in broken]
        if not torch.equal(sent, upstream):
            broken.append("backward wrote into the upstream gradient it was handed (in place); "
                          "return a new tensor")
        if any(not torch.equal(leaf.detach(), t.detach()) for leaf, t in zip(leaves, inputs)):
            broken.append("it changed an input in place; compute new tensors instead")
        tol = CODE_RTOL.get(expected.dtype, 1e-4)
        if isinstance(out, torch.Tensor) and not bool(torch.isfinite(out).all()):
            ok, verdict = False, "not yet: inf or NaN where the function is finite (an overflow?)"
            hint = ("exp of a large input overflows: rewrite forward so that it never computes exp "
                    "of a large positive number")
        else:
            ok, verdict = _tensor_verdict(out, expected.detach(), tol)
        rows.append(("forward", expected.shape, verdict))
        if ok and grads is None:
            ok = False
            rows.append(("backward", None, "not yet: the output does not require grad"))
        if ok:
            for k, (mine, ref) in enumerate(zip(grads, expected_grads)):
                ref = torch.zeros_like(inputs[k]) if ref is None else ref
                if isinstance(mine, torch.Tensor) and not bool(torch.isfinite(mine).all()):
                    g_ok, verdict = False, "not yet: inf or NaN where the gradient is finite"
                    hint = hint or ("backward overflows at large inputs: compute the derivative with "
                                    "a function that stays finite (one that never divides inf by inf)")
                else:
                    g_ok, verdict = _tensor_verdict(mine, ref, tol)
                    local = local_grads[k]
                    if (not g_ok and verdict.endswith("the values are wrong") and local is not None
                            and _tensor_verdict(mine, local, tol)[0]):
                        verdict = ("not yet: the local derivative alone (multiply it by the "
                                   "upstream gradient)")
                ok &= g_ok
                rows.append((f"backward, input {k}", ref.shape, verdict))
        if ok:
            report = _quiet_check(fn, inputs) if second_order else None
            if report is None:
                report = _quiet_check_first(fn, inputs)
            rows.append(("gradcheck", None, "correct" if report.gradcheck == "ok"
                         else f"not yet: {report.reason}"))
            if second_order and report.gradcheck == "ok":
                good = report.gradgradcheck == "ok"
                rows.append(("gradgradcheck", None, "correct" if good else
                             "not yet: the backward pass is not differentiable"))
                if not good:
                    hint = ("build backward from torch operations on the saved tensors and the upstream "
                            "gradient: no .detach(), .item(), NumPy or @once_differentiable")
            ok = report.ok
        ok = ok and not broken
        if not ok or i == len(seeds):
            width = max(len(r[0]) for r in rows)
            lines = [head] + [f"{label:<{width}}  {format_shape(shape) if shape is not None else '':<12} "
                              f"{verdict}" for label, shape, verdict in rows]
            lines += [f"rule broken: {b}" for b in broken]
            if not ok and hint:
                lines.append(f"hint: {hint}")
            lines.append(f"correct on all {len(seeds)} fresh cases" if ok else
                         "not yet: fix it and run the check again, or open the solution")
            message = "\n".join(lines)
            print(message)
            return CheckResult(bool(ok), message)
    raise AssertionError("unreachable")  # pragma: no cover


def _quiet_check_first(fn, inputs: tuple) -> GradcheckReport:
    with contextlib.redirect_stdout(io.StringIO()):
        return check_function(fn, *inputs, second_order=False, raise_on_failure=False)

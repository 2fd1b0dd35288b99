"""Compare a hand-derived gradient with autograd's, and print one machine-stable row.

The row never shows full-precision differences (they change with thread count and BLAS):
an agreeing gradient prints the tolerance it met, a disagreeing one prints its relative error to
two significant digits (``5.0e-01``), or says in words where a value is NaN or infinite.

What a check guarantees
-----------------------
The error is measured normwise: ``max |manual - reference|`` over ``max(|manual|.max(),
|reference|.max())``, held to a relative tolerance ``rtol`` (see :data:`RTOL`). So

* every element whose error exceeds ``rtol`` times the largest magnitude is caught; in particular
  an element of magnitude at least ``100 * rtol`` of the largest (``1e-8`` in float64, ``1e-3`` in
  float32) that is wrong by 2% of itself or more (a sign, a factor, a missing term) is caught;
* a right gradient computed in another order (another summation order, a matmul against a loop)
  passes: rounding errors of a reduction are a few units of the dtype's precision relative to the
  largest element, far below ``rtol``;
* NaN is never a confirmation: NaN on either side, or on both, fails and the row says so, and so
  does an infinity where the other side holds a number (the same infinity on both sides agrees).

Half precision (float16, bfloat16): a half-precision value is compared with a float32 or float64
reference and held to ``RTOL`` (``1e-2``): it checks that the value is the reference rounded to
half precision (one rounding: 0.4% in bfloat16, 0.05% in float16). Two half-precision
computations of one gradient (a manual bfloat16 gradient against the ``.grad`` of a bfloat16 leaf)
are refused unless ``rtol`` is given: every partial sum is rounded to 8 (bfloat16) or 11
(float16) bits, so where terms cancel, two right gradients summed in different orders differ by 5%
or more, and no default tolerance would both pass them and catch a wrong one. Check a derivation in
float32 or float64; half precision changes only the rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ._printed import PrintedResult, format_shape
from ._validate import (positive_number, require_float_tensor, require_same_shape, require_tensor,
                        shape_str)

__all__ = ["RTOL", "Comparison", "compare", "compare_tensors"]

#: Relative tolerance by dtype: max |manual - reference| must be within ``RTOL`` times the larger of
#: max |manual| and max |reference|; when the two dtypes differ, the looser tolerance applies.
RTOL = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    torch.float16: 1e-2,
    torch.bfloat16: 1e-2,
}

_HALF = (torch.float16, torch.bfloat16)


@dataclass(frozen=True, repr=False)
class Comparison(PrintedResult):
    """The outcome of one comparison (what :func:`compare` printed, as data).

    ``rel_error`` is max |actual - expected| divided by max(|expected|.max(), |actual|.max(), tiny)
    (``inf`` when a NaN or an unmatched infinity is involved); ``tolerance`` is the relative
    tolerance it was held to. ``problem`` says in words what is wrong besides the size of the
    error (NaN, an infinity), ``""`` when nothing is.
    """

    name: str
    ok: bool
    max_abs_error: float
    rel_error: float
    tolerance: float
    shape: tuple
    problem: str = ""

    def row(self) -> str:
        shape = format_shape(self.shape)
        if self.ok:
            # the bound it met, not the measured error (which differs from machine to machine)
            verdict, err = "ok", f"within rtol {self.tolerance:.0e}"
        elif self.problem:
            verdict, err = "MISMATCH", self.problem
        else:
            verdict, err = "MISMATCH", f"rel. error = {self.rel_error:.1e} > {self.tolerance:.0e}"
        return f"{self.name:<18} {shape:<12} {verdict:<9} {err}"


def _tolerance(*tensors: torch.Tensor, rtol, name: str = "", what: str = "expected") -> float:
    if rtol is not None:
        value = positive_number(rtol)
        if value is None:
            raise ValueError(f"rtol must be positive and finite (a relative tolerance such as 1e-6), got {rtol!r}; "
                             f"or leave it out to use the default for the dtype (see gradlab.checking.RTOL).")
        return value
    if all(t.dtype in _HALF for t in tensors):
        kinds = " and ".join(sorted({str(t.dtype).replace("torch.", "") for t in tensors}))
        raise ValueError(
            f"compare({name!r}): the manual value and {what} are both half precision ({kinds}). "
            f"Two half-precision computations of one gradient differ by several percent where terms "
            f"cancel, so there is no default tolerance for them. Check the derivation in float32 or "
            f"float64 (run the forward and backward on x.float()), compare a half-precision value with "
            f"a float32 reference, or pass rtol= (e.g. rtol=0.05) to choose a tolerance yourself.")
    return max(RTOL.get(t.dtype, 1e-5) for t in tensors)


def _count(mask: torch.Tensor, total: int) -> str:
    return f"{int(mask.sum())} of {total}"


def _measure(actual: torch.Tensor, expected: torch.Tensor, what: str):
    """(max_abs, rel, index of the worst element, problem in words or "")."""
    a = actual.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    if a.numel() == 0:
        return 0.0, 0.0, None, ""
    nan_a, nan_e = torch.isnan(a), torch.isnan(e)
    same_inf = torch.isinf(a) & torch.isinf(e) & (a == e)
    inf_a = torch.isinf(a) & ~same_inf & ~nan_e
    inf_e = torch.isinf(e) & ~same_inf & ~nan_a
    total = a.numel()
    problem = ""
    if bool((nan_a & nan_e).any()):
        problem = f"NaN on both sides ({_count(nan_a & nan_e, total)}): NaN confirms nothing"
    elif bool(nan_a.any()):
        problem = f"manual value is NaN ({_count(nan_a, total)})"
    elif bool(nan_e.any()):
        problem = f"{what} is NaN ({_count(nan_e, total)})"
    elif bool(inf_a.any()):
        problem = f"manual value is inf where a number is expected ({_count(inf_a, total)})"
    elif bool(inf_e.any()):
        problem = f"{what} is inf ({_count(inf_e, total)})"
    diff = (a - e).abs()
    diff = torch.where(same_inf, torch.zeros_like(diff), diff)
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)  # NaN anywhere: infinitely wrong
    finite = lambda t: torch.where(torch.isfinite(t), t.abs(), torch.zeros_like(t))  # noqa: E731
    scale = max(finite(a).max().item(), finite(e).max().item(), torch.finfo(torch.float64).tiny)
    worst = int(diff.reshape(-1).argmax())
    max_abs = diff.reshape(-1)[worst].item()
    return max_abs, max_abs / scale, worst, problem


def _multiple_hint(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str,
                   is_grad: bool) -> str:
    """A hint when one side is a whole multiple (or the negative) of the other, else ""."""
    a = actual.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(e).all())):
        return ""
    aa, ee = float((a * a).sum()), float((e * e).sum())
    if aa == 0.0 or ee == 0.0:
        return ""

    def close(x: torch.Tensor, y: torch.Tensor) -> bool:
        scale = max(float(x.abs().max()), float(y.abs().max()))
        return float((x - y).abs().max()) <= tol * scale

    ratio = float((a * e).sum()) / aa           # expected ~ ratio * actual
    k = round(ratio)
    if k == -1 and close(-a, e):
        return "The manual value has the wrong sign everywhere: check the sign of each term."
    if k >= 2 and close(k * a, e):
        if is_grad:
            return (f"{what} is exactly {k} times the manual value: either the derivation misses a "
                    f"factor of {k}, or backward ran {k} times and .grad accumulated (gradients add "
                    f"up; zero the gradient, x.grad = None, before each backward()).")
        return f"{what} is exactly {k} times the manual value: a factor is missing."
    back = round(float((a * e).sum()) / ee)      # actual ~ back * expected
    if back >= 2 and close(a, back * e):
        return f"The manual value is exactly {back} times {what}: an extra factor of {back}."
    return ""


def compare_tensors(name: str, actual, expected, *, rtol: float | None = None,
                    raise_on_mismatch: bool = True, what: str = "expected") -> Comparison:
    """Compare two tensors of the same shape, print one row, and raise if they disagree.

    ``actual`` and ``expected`` must be floating-point tensors of identical shape (no broadcasting:
    a gradient has the shape of its variable). The check is relative to the larger magnitude of the
    two, so a tensor whose entries are around 1e9 may differ by about 1e4 in float32 and still agree
    (see the module docstring for exactly what is caught). NaN on either side never agrees.
    Returns a :class:`Comparison`; raises ``AssertionError`` on disagreement unless
    ``raise_on_mismatch=False``. ``rtol`` may be any positive real number (NumPy scalars too).
    """
    return _compare(name, actual, expected, rtol=rtol, raise_on_mismatch=raise_on_mismatch, what=what,
                    is_grad=False)


def _compare(name, actual, expected, *, rtol, raise_on_mismatch, what, is_grad, extra_hint=""):
    if not isinstance(name, str):
        raise TypeError(f"name must be a string label for the row, got {type(name).__name__}.")
    require_float_tensor(actual, f"compare({name!r}): the manual value")
    require_float_tensor(expected, f"compare({name!r}): {what}")
    require_same_shape(actual, "the manual value", expected, what,
                       "A gradient has exactly the shape of its variable: sum over broadcast "
                       "dimensions, or reshape, before comparing.")
    tol = _tolerance(actual, expected, rtol=rtol, name=name, what=what)
    max_abs, rel, worst, problem = _measure(actual, expected, what)
    result = Comparison(name, rel <= tol and not problem, max_abs, rel, tol, tuple(actual.shape), problem)
    print(result.row())
    if not result.ok and raise_on_mismatch:
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), actual.shape)) if actual.dim() else ()
        a_val = actual.detach().reshape(-1)[worst].item()
        e_val = expected.detach().reshape(-1)[worst].item()
        if problem:
            summary = f"  {problem}\n"
            advice = ("A NaN or an infinity is never a confirmation: find the operation that produced "
                      "it (a log or a division at 0, an overflowing exp) and make the computation "
                      "finite before comparing.")
        else:
            summary = f"  max |difference| / max |value| = {rel:.2e} > tolerance {tol:.0e}\n"
            advice = (extra_hint or _multiple_hint(actual, expected, tol, what, is_grad)
                      or f"Check the derivation of {name}.")
        raise AssertionError(
            f"compare({name!r}): the manual value and {what} disagree.\n"
            f"  shapes: manual {shape_str(actual)}, {what} {shape_str(expected)}\n"
            f"  worst element {list(index)}: manual = {a_val:.6g}, {what} = {e_val:.6g} "
            f"(|difference| = {max_abs:.3g})\n"
            f"{summary}"
            f"{advice}\n"
            f"Pass raise_on_mismatch=False to show a deliberate mismatch without stopping."
        )
    return result


def compare(name: str, manual, tensor, *, rtol: float | None = None,
            raise_on_mismatch: bool = True) -> Comparison:
    """Check a hand-computed gradient against ``tensor.grad``; print one row; raise on mismatch.

    Shapes: ``manual`` must have exactly ``tensor.shape``.

    >>> x = torch.tensor([1.0, 2.0], requires_grad=True); (x ** 2).sum().backward()
    >>> compare("x", 2 * x.detach(), x)  # doctest: +SKIP
    x                  (2,)         ok        within rtol 1e-05

    ``tensor.grad`` must exist: call ``backward()`` first, and ``retain_grad()`` before it for an
    intermediate (non-leaf) tensor. The tolerance scales with the gradient's magnitude (see
    :data:`RTOL`); pass ``rtol`` to override it, or ``raise_on_mismatch=False`` to show a
    deliberately wrong gradient without stopping. NaN never agrees, not even with NaN.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string label for the row, got {type(name).__name__}.")
    require_tensor(tensor, f"compare({name!r}): the tensor whose .grad is the reference")
    # Reading .grad of a non-leaf that does not retain it makes torch warn; we explain instead.
    grad = tensor.grad if (tensor.is_leaf or tensor.retains_grad) else None
    manual_has_grad = (isinstance(manual, torch.Tensor) and manual.requires_grad
                       and (manual.is_leaf or manual.retains_grad) and manual.grad is not None)
    if grad is None:
        if manual_has_grad:
            advice = ("the arguments look swapped: the second argument (the manual value) has a .grad "
                      "and the third does not. Call compare(name, manual, tensor) with your "
                      "hand-computed gradient second and the tensor autograd differentiated third")
        elif not tensor.requires_grad:
            advice = ("it does not require grad: create it with requires_grad=True (or call "
                      ".requires_grad_()) before the forward pass. If it is already a gradient "
                      "(such as x.grad), pass the tensor itself instead: compare(name, manual, x); "
                      "to compare two plain tensors, use compare_tensors")
        elif not tensor.is_leaf:
            advice = ("it is an intermediate (non-leaf) tensor, whose .grad autograd does not keep: "
                      "call .retain_grad() on it before backward(), then run backward() again")
        else:
            advice = "call .backward() on a scalar that depends on it first"
        raise ValueError(f"compare({name!r}): {name}.grad is None, so there is nothing to compare with; {advice}.")
    extra = ""
    if manual is tensor or manual_has_grad:
        extra = ("The manual value is itself a tensor that autograd differentiated (it has a .grad): "
                 "pass your hand-computed gradient second and the tensor third, "
                 "compare(name, manual, tensor).")
    return _compare(name, manual, grad, rtol=rtol, raise_on_mismatch=raise_on_mismatch,
                    what=f"{name}.grad (autograd)", is_grad=True, extra_hint=extra)

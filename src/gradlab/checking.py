"""Compare a hand-derived gradient with autograd's, and print one machine-stable row.

The row never shows full-precision differences (they change with thread count and BLAS):
an agreeing gradient prints the tolerance it met, a disagreeing one prints its relative error to
two significant digits (``5.0e-01``); a NaN or infinite difference prints as ``inf``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._printed import PrintedResult, format_shape
from ._validate import require_float_tensor, require_same_shape, require_tensor, shape_str

__all__ = ["RTOL", "Comparison", "compare", "compare_tensors"]

#: Relative tolerance by dtype: max |manual - reference| must be within ``RTOL`` times the larger of
#: max |manual| and max |reference|; when the two dtypes differ, the looser tolerance applies.
RTOL = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    torch.float16: 1e-2,
    torch.bfloat16: 1e-2,
}


@dataclass(frozen=True, repr=False)
class Comparison(PrintedResult):
    """The outcome of one comparison (what :func:`compare` printed, as data).

    ``rel_error`` is max |actual - expected| divided by max(|expected|.max(), |actual|.max(), tiny);
    ``tolerance`` is the relative tolerance it was held to.
    """

    name: str
    ok: bool
    max_abs_error: float
    rel_error: float
    tolerance: float
    shape: tuple

    def row(self) -> str:
        shape = format_shape(self.shape)
        if self.ok:
            verdict, err = "ok", f"rel. error <= {self.tolerance:.0e}"
        else:
            verdict, err = "MISMATCH", f"rel. error = {self.rel_error:.1e} > {self.tolerance:.0e}"
        return f"{self.name:<18} {shape:<12} {verdict:<9} {err}"


def _tolerance(*tensors: torch.Tensor, rtol: float | None) -> float:
    if rtol is not None:
        if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not (math.isfinite(rtol) and rtol > 0):
            raise ValueError(f"rtol must be positive and finite (a relative tolerance such as 1e-6), got {rtol!r}; "
                             f"or leave it out to use the default for the dtype (see gradlab.checking.RTOL).")
        return float(rtol)
    return max(RTOL.get(t.dtype, 1e-5) for t in tensors)


def _measure(actual: torch.Tensor, expected: torch.Tensor):
    a = actual.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    both_nan = torch.isnan(a) & torch.isnan(e)
    same_inf = torch.isinf(a) & torch.isinf(e) & (a == e)
    diff = (a - e).abs()
    diff = torch.where(both_nan | same_inf, torch.zeros_like(diff), diff)
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)  # NaN vs a number: infinitely wrong
    finite = lambda t: torch.where(torch.isfinite(t), t.abs(), torch.zeros_like(t))  # noqa: E731
    scale = max(finite(a).max().item() if a.numel() else 0.0,
                finite(e).max().item() if e.numel() else 0.0,
                torch.finfo(torch.float64).tiny)
    if diff.numel() == 0:
        return 0.0, 0.0, None
    worst = int(diff.reshape(-1).argmax())
    max_abs = diff.reshape(-1)[worst].item()
    return max_abs, max_abs / scale, worst


def compare_tensors(name: str, actual, expected, *, rtol: float | None = None,
                    raise_on_mismatch: bool = True, what: str = "expected") -> Comparison:
    """Compare two tensors of the same shape, print one row, and raise if they disagree.

    ``actual`` and ``expected`` must be floating-point tensors of identical shape (no broadcasting:
    a gradient has the shape of its variable). The check is relative to the larger magnitude of the
    two, so a tensor whose entries are around 1e9 may differ by about 1e4 in float32 and still agree.
    Returns a :class:`Comparison`; raises ``AssertionError`` on disagreement unless
    ``raise_on_mismatch=False``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string label for the row, got {type(name).__name__}.")
    require_float_tensor(actual, f"compare({name!r}): the manual value")
    require_float_tensor(expected, f"compare({name!r}): {what}")
    require_same_shape(actual, "the manual value", expected, what,
                       "A gradient has exactly the shape of its variable: sum over broadcast "
                       "dimensions, or reshape, before comparing.")
    tol = _tolerance(actual, expected, rtol=rtol)
    max_abs, rel, worst = _measure(actual, expected)
    result = Comparison(name, rel <= tol, max_abs, rel, tol, tuple(actual.shape))
    print(result.row())
    if not result.ok and raise_on_mismatch:
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), actual.shape)) if actual.dim() else ()
        a_val = actual.detach().reshape(-1)[worst].item()
        e_val = expected.detach().reshape(-1)[worst].item()
        raise AssertionError(
            f"compare({name!r}): the manual value and {what} disagree.\n"
            f"  shapes: manual {shape_str(actual)}, {what} {shape_str(expected)}\n"
            f"  worst element {list(index)}: manual = {a_val:.6g}, {what} = {e_val:.6g} "
            f"(|difference| = {max_abs:.3g})\n"
            f"  max |difference| / max |value| = {rel:.2e} > tolerance {tol:.0e}\n"
            f"Check the derivation of {name}, or pass raise_on_mismatch=False to show a deliberate "
            f"mismatch without stopping."
        )
    return result


def compare(name: str, manual, tensor, *, rtol: float | None = None,
            raise_on_mismatch: bool = True) -> Comparison:
    """Check a hand-computed gradient against ``tensor.grad``; print one row; raise on mismatch.

    Shapes: ``manual`` must have exactly ``tensor.shape``.

    >>> x = torch.tensor([1.0, 2.0], requires_grad=True); (x ** 2).sum().backward()
    >>> compare("x", 2 * x.detach(), x)  # doctest: +SKIP
    x                  (2,)         ok        rel. error <= 1e-05

    ``tensor.grad`` must exist: call ``backward()`` first, and ``retain_grad()`` before it for an
    intermediate (non-leaf) tensor. The tolerance scales with the gradient's magnitude (see
    :data:`RTOL`); pass ``rtol`` to override it, or ``raise_on_mismatch=False`` to show a
    deliberately wrong gradient without stopping.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string label for the row, got {type(name).__name__}.")
    require_tensor(tensor, f"compare({name!r}): the tensor whose .grad is the reference")
    # Reading .grad of a non-leaf that does not retain it makes torch warn; we explain instead.
    grad = tensor.grad if (tensor.is_leaf or tensor.retains_grad) else None
    if grad is None:
        if not tensor.requires_grad:
            advice = ("it does not require grad: create it with requires_grad=True (or call "
                      ".requires_grad_()) before the forward pass")
        elif not tensor.is_leaf:
            advice = ("it is an intermediate (non-leaf) tensor, whose .grad autograd does not keep: "
                      "call .retain_grad() on it before backward(), then run backward() again")
        else:
            advice = "call .backward() on a scalar that depends on it first"
        raise ValueError(f"compare({name!r}): {name}.grad is None, so there is nothing to compare with; {advice}.")
    return compare_tensors(name, manual, grad, rtol=rtol, raise_on_mismatch=raise_on_mismatch,
                           what=f"{name}.grad (autograd)")

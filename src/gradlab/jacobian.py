"""Build a full Jacobian one sweep at a time: row by row (reverse mode) or column by column (forward mode).

Layout, for ``y = f(x)`` with ``n = x.numel()`` inputs and ``m = y.numel()`` outputs: the result
has shape ``(m, n)`` and ``J[i, j] = d y.reshape(-1)[i] / d x.reshape(-1)[j]``, so rows are
outputs and columns are inputs. Tensors of any shape are flattened in row-major order (the order of
``reshape(-1)``); ``J.reshape(*y.shape, *x.shape)`` gives the layout of
``torch.autograd.functional.jacobian`` and ``torch.func.jacrev``.

- :func:`jacobian_by_rows`: one vector-Jacobian product ``e_i^T J`` per output (``m`` backward
  sweeps, one forward pass). Cheap when outputs are few.
- :func:`jacobian_by_columns`: one Jacobian-vector product ``J e_j`` per input (``n`` forward
  sweeps carrying a tangent). Cheap when inputs are few.

Both are deliberately plain loops, for teaching and for checking; ``torch.func.jacrev`` and
``torch.func.jacfwd`` do the same work vectorised.
"""
from __future__ import annotations

from typing import Callable

import torch

from ._validate import require_floating, require_tensor, shape_str

__all__ = ["jacobian_by_rows", "jacobian_by_columns"]


def _check_f(f, who: str) -> None:
    if not callable(f):
        raise TypeError(f"{who}: f must be a function of one tensor, got {type(f).__name__}. "
                        f"Pass the function itself, e.g. {who}(torch.sin, x), not its value.")


def _check_x(x, who: str) -> torch.Tensor:
    require_tensor(x, f"{who}: x")
    require_floating(x, f"{who}: x of shape {shape_str(x)}")
    # A fresh leaf: the caller's tensor, its .grad and its graph are never touched.
    return x.detach().clone()


def _check_output(y, x: torch.Tensor, who: str) -> torch.Tensor:
    what = f"{who}: the value returned by f"
    if not isinstance(y, torch.Tensor):
        raise TypeError(
            f"{what} must be a torch.Tensor, got {type(y).__name__} (for x of shape {shape_str(x)}). "
            f"Return one tensor: build it with torch operations (torch.stack([...]) for several values), "
            f"without .item(), .tolist() or .numpy(), which leave autograd."
        )
    if not y.is_floating_point():
        raise TypeError(
            f"{what} has dtype {y.dtype} (shape {shape_str(y)}), which has no derivative. "
            f"Return a floating-point tensor; integer results such as argmax or comparisons are constant "
            f"almost everywhere."
        )
    return y


def _result_dtype(x: torch.Tensor, y: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, y.dtype)


_LEFT_TORCH = ("numpy", "doesn't have storage", "does not have storage", ".item()", "tolist",
               "data pointer", "cannot be converted to a python number")


def _call(f, x: torch.Tensor, who: str, mode: str):
    """``f(x)``; an error from f leaving torch (NumPy, .item()) becomes one that says so."""
    try:
        return f(x)
    except RuntimeError as err:
        message = str(err).lower()
        if any(mark in message for mark in _LEFT_TORCH):
            raise TypeError(
                f"{who}: f left torch while being traced ({type(err).__name__}: {str(err).splitlines()[0][:80]}). "
                f"{mode} follows x only through torch operations: f must not convert x to NumPy "
                f"(.numpy(), np.* on the tensor) or to Python numbers (.item(), .tolist(), float()). "
                f"Rewrite f with torch operations, e.g. torch.sin(x) instead of np.sin(x.numpy())."
            ) from None
        raise


def _check_no_leak(f, x0: torch.Tensor, y: torch.Tensor, jac: torch.Tensor, who: str) -> None:
    """Outputs with an all-zero row must really be constant; else f left autograd (e.g. .item())."""
    zero_rows = (jac == 0).all(dim=1) if jac.numel() else torch.zeros(0, dtype=torch.bool)
    if not bool(zero_rows.any()) or x0.numel() == 0:
        return
    eps = max(torch.finfo(x0.dtype).eps, torch.finfo(y.dtype).eps)   # the coarser of the two
    # A step of eps**(1/3): large enough that a leak through a lower precision inside f (a float32
    # .item()) still moves the output by many of its rounding steps on each side.
    h = eps ** (1 / 3) * max(x0.abs().max().item(), 1.0)
    v = torch.rand(x0.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    v = (v + 0.5).to(x0.dtype)
    with torch.no_grad():
        up = f((x0 + h * v).clone())
        down = f((x0 - h * v).clone())
    if not (isinstance(up, torch.Tensor) and isinstance(down, torch.Tensor) and up.numel() == y.numel()):
        return
    base = y.detach().reshape(-1).double()
    right = up.detach().reshape(-1).double() - base
    left = base - down.detach().reshape(-1).double()
    scale = max(y.detach().abs().max().item(), 1e-30)
    floor = 64 * torch.finfo(y.dtype).eps * scale
    # A leak moves the output alike on both sides (f is smooth there, autograd just cannot see
    # it). A kink whose subgradient is 0 (ReLU or clamp at 0, |x| at 0) moves it on one side
    # only, or in opposite directions: a right zero row, not a leak.
    alike = (right * left > 0) & (torch.minimum(right.abs(), left.abs())
                                  >= 0.5 * torch.maximum(right.abs(), left.abs()))
    moved = zero_rows & (right.abs() > floor) & (left.abs() > floor) & alike
    if bool(moved.any()):
        i = int(torch.nonzero(moved)[0])
        raise ValueError(
            f"{who}: output {i} of f changes when x changes, yet autograd sees no dependence on x, so "
            f"its row of the Jacobian would be zero. f leaves autograd: .item(), .tolist(), float(), "
            f"NumPy, torch.tensor(...) built from x's values, .detach() or .data. Build every output "
            f"from x with torch operations (torch.stack([...]) to combine values)."
        )


def jacobian_by_rows(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The Jacobian of ``f`` at ``x``, one row per backward sweep (reverse mode).

    Shapes: ``x`` any shape with ``n`` elements, ``f(x)`` any shape with ``m`` elements; returns
    ``(m, n)``, rows = outputs, columns = inputs (see the module docstring for non-vector shapes).

    Runs ``f`` once, then for each output ``i`` asks ``torch.autograd.grad`` for the
    vector-Jacobian product ``e_i^T J``, which is row ``i``. Outputs that do not depend on ``x``
    give rows of zeros, as in ``torch.autograd.functional.jacobian``, but an output that changes
    with ``x`` although autograd sees no dependence (``.item()`` or NumPy inside f) raises a
    ``ValueError`` instead of a silent zero row. The dtype is the promotion
    of ``x``'s and ``f(x)``'s; ``x`` itself is not modified and its ``.grad`` is left alone (``f``
    gets a copy, so it may even work in place).
    """
    who = "jacobian_by_rows"
    _check_f(f, who)
    # Record a graph even when called under torch.no_grad() or torch.inference_mode().
    with torch.inference_mode(False), torch.enable_grad():
        x0 = _check_x(x, who).requires_grad_(True)
        # a clone: f may work in place without touching x0
        y = _check_output(_call(f, x0.clone(), who, "Reverse mode (autograd)"), x, who)
        m, n = y.numel(), x0.numel()
        jac = torch.zeros(m, n, dtype=_result_dtype(x0, y), device=x0.device)
        if not y.requires_grad:          # f(x) does not depend on x: the Jacobian is zero
            _check_no_leak(f, x0.detach(), y, jac, who)
            return jac
        flat_v = torch.zeros(m, dtype=y.dtype, device=y.device)
        for i in range(m):
            flat_v.zero_()
            flat_v[i] = 1                 # v = e_i picks output i
            (row,) = torch.autograd.grad(y, x0, grad_outputs=flat_v.reshape(y.shape),
                                         retain_graph=True, allow_unused=True)
            if row is not None:
                jac[i] = row.reshape(-1)
        _check_no_leak(f, x0.detach(), y, jac, who)
    return jac


def jacobian_by_columns(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The Jacobian of ``f`` at ``x``, one column per forward sweep (forward mode).

    Shapes: ``x`` any shape with ``n`` elements, ``f(x)`` any shape with ``m`` elements; returns
    ``(m, n)``, rows = outputs, columns = inputs (see the module docstring for non-vector shapes).

    Runs ``f`` once to check its output, then for each input ``j`` calls ``torch.func.jvp`` with
    the tangent ``e_j`` (shaped like ``x``); the Jacobian-vector product ``J e_j`` is column ``j``.
    So ``f`` is evaluated ``n + 1`` times, and must be written with torch operations that
    ``torch.func`` can trace (NumPy inside f raises a ``TypeError`` that says so). Outputs that do
    not depend on ``x`` give zeros; an output that changes with ``x`` although forward mode sees no
    dependence (``.item()`` inside f) raises a ``ValueError``. Works under ``torch.no_grad()`` and
    ``torch.inference_mode()``, with an ``f`` that works in place.
    """
    who = "jacobian_by_columns"
    _check_f(f, who)
    # Outside inference mode even when called inside it: an inference tensor cannot carry a tangent,
    # nor be written in place by f.
    with torch.inference_mode(False):
        x0 = _check_x(x, who)
        with torch.no_grad():   # clones here and below: an in-place f must not move x0
            y = _check_output(_call(f, x0.clone(), who, "Forward mode"), x, who)
        m, n = y.numel(), x0.numel()
        jac = torch.zeros(m, n, dtype=_result_dtype(x0, y), device=x0.device)
        flat_tangent = torch.zeros(n, dtype=x0.dtype, device=x0.device)
        for j in range(n):
            flat_tangent.zero_()
            flat_tangent[j] = 1
            tangent = flat_tangent.reshape(x0.shape).clone()
            _, column = _call(lambda p: torch.func.jvp(f, (p,), (tangent,)), x0.clone(), who, "Forward mode")
            if not isinstance(column, torch.Tensor) or column.numel() != m:
                got = shape_str(column) if isinstance(column, torch.Tensor) else type(column).__name__
                raise ValueError(
                    f"{who}: f returned shape {shape_str(y)} at first but {got} during forward sweep {j}. "
                    f"f must be a pure function of x: the same output shape every call, no hidden state."
                )
            jac[:, j] = column.reshape(-1)
        _check_no_leak(f, x0, y, jac, who)
    return jac

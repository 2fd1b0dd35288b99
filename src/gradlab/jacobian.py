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


def jacobian_by_rows(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The Jacobian of ``f`` at ``x``, one row per backward sweep (reverse mode).

    Shapes: ``x`` any shape with ``n`` elements, ``f(x)`` any shape with ``m`` elements; returns
    ``(m, n)``, rows = outputs, columns = inputs (see the module docstring for non-vector shapes).

    Runs ``f`` once, then for each output ``i`` asks ``torch.autograd.grad`` for the
    vector-Jacobian product ``e_i^T J``, which is row ``i``. Outputs that do not depend on ``x``
    give rows of zeros, as in ``torch.autograd.functional.jacobian``. The dtype is the promotion
    of ``x``'s and ``f(x)``'s; ``x`` itself is not modified and its ``.grad`` is left alone (``f``
    gets a copy, so it may even work in place).
    """
    who = "jacobian_by_rows"
    _check_f(f, who)
    # Record a graph even when called under torch.no_grad() or torch.inference_mode().
    with torch.inference_mode(False), torch.enable_grad():
        x0 = _check_x(x, who).requires_grad_(True)
        y = _check_output(f(x0.clone()), x, who)   # a clone: f may work in place without touching x0
        m, n = y.numel(), x0.numel()
        jac = torch.zeros(m, n, dtype=_result_dtype(x0, y), device=x0.device)
        if not y.requires_grad:          # f(x) does not depend on x: the Jacobian is zero
            return jac
        flat_v = torch.zeros(m, dtype=y.dtype, device=y.device)
        for i in range(m):
            flat_v.zero_()
            flat_v[i] = 1                 # v = e_i picks output i
            (row,) = torch.autograd.grad(y, x0, grad_outputs=flat_v.reshape(y.shape),
                                         retain_graph=True, allow_unused=True)
            if row is not None:
                jac[i] = row.reshape(-1)
    return jac


def jacobian_by_columns(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The Jacobian of ``f`` at ``x``, one column per forward sweep (forward mode).

    Shapes: ``x`` any shape with ``n`` elements, ``f(x)`` any shape with ``m`` elements; returns
    ``(m, n)``, rows = outputs, columns = inputs (see the module docstring for non-vector shapes).

    Runs ``f`` once to check its output, then for each input ``j`` calls ``torch.func.jvp`` with
    the tangent ``e_j`` (shaped like ``x``); the Jacobian-vector product ``J e_j`` is column ``j``.
    So ``f`` is evaluated ``n + 1`` times, and must be written with torch operations that
    ``torch.func`` can trace. Outputs that do not depend on ``x`` give zeros.
    """
    who = "jacobian_by_columns"
    _check_f(f, who)
    x0 = _check_x(x, who)
    with torch.no_grad():
        y = _check_output(f(x0.clone()), x, who)   # clones here and below: an in-place f must not move x0
    m, n = y.numel(), x0.numel()
    jac = torch.zeros(m, n, dtype=_result_dtype(x0, y), device=x0.device)
    flat_tangent = torch.zeros(n, dtype=x0.dtype, device=x0.device)
    for j in range(n):
        flat_tangent.zero_()
        flat_tangent[j] = 1
        _, column = torch.func.jvp(f, (x0.clone(),), (flat_tangent.reshape(x0.shape).clone(),))
        if not isinstance(column, torch.Tensor) or column.numel() != m:
            got = shape_str(column) if isinstance(column, torch.Tensor) else type(column).__name__
            raise ValueError(
                f"{who}: f returned shape {shape_str(y)} at first but {got} during forward sweep {j}. "
                f"f must be a pure function of x: the same output shape every call, no hidden state."
            )
        jac[:, j] = column.reshape(-1)
    return jac

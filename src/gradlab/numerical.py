"""Gradients by central finite differences, the slow but independent third witness.

Accuracy: with the default ``eps = 1e-6`` in float64, truncation error is about
``eps**2 * |f'''|`` (~1e-12) and rounding error about ``1e-16 * |f| / eps`` (~1e-10 * |f|), so for
a smooth f of moderate size expect 8 to 10 correct significant digits. Near a kink (ReLU at 0,
max at a tie, |x| at 0) the estimate is the average of the two one-sided slopes, not a subgradient.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ._validate import require_float_tensor, require_tensor, shape_str

__all__ = ["numerical_grad"]


def numerical_grad(f: Callable[..., torch.Tensor], *inputs: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, ...]:
    """Central-difference gradient of a scalar function ``f(*inputs)``, one tensor per input.

    Each input (any shape, any strides, floating dtype) is copied to float64; every element is
    nudged by ``+eps`` and ``-eps`` and ``(f(+) - f(-)) / (2 eps)`` recorded. Returns a tuple of
    float64 tensors with the inputs' shapes. ``f`` receives fresh copies on every call (so an
    in-place operation inside ``f`` cannot corrupt the estimate) and must return a tensor with one
    element; tensors it captures from outside should be float64 too (or be passed as inputs).
    Cost: 2 calls of f per element of every input.
    """
    if not callable(f):
        raise TypeError(f"numerical_grad: f must be a function of the inputs, got {type(f).__name__}.")
    if not inputs:
        raise ValueError("numerical_grad: pass at least one input tensor after f, e.g. numerical_grad(f, x, w).")
    if isinstance(eps, bool) or not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"numerical_grad: eps must be a positive number, got {eps!r}; the default 1e-6 suits float64.")
    points = []
    for i, x in enumerate(inputs):
        what = f"numerical_grad: input {i}"
        require_float_tensor(x, what)
        # A contiguous copy, whatever the input's strides (a transpose, an expand), so view(-1) works.
        points.append(x.detach().to(torch.float64, copy=True, memory_format=torch.contiguous_format))

    def evaluate() -> float:
        try:
            out = f(*(p.clone() for p in points))
        except RuntimeError as err:
            message = str(err).lower()
            if "dtype" in message or "scalar type" in message:
                err.add_note("numerical_grad calls f with float64 copies of the inputs: convert the tensors f "
                             "uses from outside with .double(), or pass them to numerical_grad as inputs.")
            raise
        out = require_tensor(out, "numerical_grad: the value returned by f")
        if out.numel() != 1:
            raise ValueError(
                f"numerical_grad: f must return a scalar (one element), but it returned shape {shape_str(out)}. "
                f"Reduce it to a scalar first, e.g. (v * f(x)).sum() for a weighting v, or .sum()."
            )
        return float(out.item())

    grads = []
    with torch.no_grad():
        evaluate()  # fail early, before any nudging, if f's output is not a scalar
        for p in points:
            g = torch.zeros_like(p)
            flat_p, flat_g = p.view(-1), g.view(-1)
            for k in range(flat_p.numel()):
                original = flat_p[k].item()
                flat_p[k] = original + eps
                up = evaluate()
                flat_p[k] = original - eps
                down = evaluate()
                flat_p[k] = original
                flat_g[k] = (up - down) / (2 * eps)
            grads.append(g)
    return tuple(grads)

"""Gradients by central finite differences, the slow but independent third witness.

The step is relative: element ``x_i`` of an input is nudged by ``h_i = eps * max(|x_i|, s)``,
where ``s`` is the input's root-mean-square magnitude (1 for an all-zero input), and the
difference quotient is divided by the step actually taken, ``(x_i + h_i) - (x_i - h_i)`` in
float64, not by ``2 h_i``. So the estimate does not depend on the units of the inputs: ``x.sum()``
has derivative 1 to about 1e-10 whether x is 1e-8 or 1e12.

Accuracy, for a smooth f in float64 with the default ``eps = 1e-6``, relative to the size of the
gradient: truncation error about ``(eps x)**2 |f'''| / 6`` and rounding error about
``1e-16 |f| / (eps x)``, i.e. 8 to 10 correct significant digits when f, x and the gradient are of
matching size. It degrades when f's value is much larger than its change across the input's scale
(a large constant offset inside f). Near a kink (ReLU at 0, max at a tie, |x| at 0) the estimate is
the average of the two one-sided slopes, not a subgradient.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ._validate import positive_number, require_float_tensor, require_tensor, shape_str

__all__ = ["numerical_grad"]


def numerical_grad(f: Callable[..., torch.Tensor], *inputs: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, ...]:
    """Central-difference gradient of a scalar function ``f(*inputs)``, one tensor per input.

    Each input (any shape, any strides, floating dtype, finite values) is copied to float64; every
    element ``x_i`` is nudged by ``+h_i`` and ``-h_i`` with ``h_i = eps * max(|x_i|, rms(x))`` (see
    the module docstring), and ``(f(+) - f(-)) / ((x_i + h_i) - (x_i - h_i))`` recorded. Returns a
    tuple of float64 tensors with the inputs' shapes. ``f`` receives fresh copies on every call (so
    an in-place operation inside ``f`` cannot corrupt the estimate) and must return a tensor with one
    element; tensors it captures from outside should be float64 too (or be passed as inputs).
    ``eps`` is a relative step (any positive real number below 1, NumPy scalars too).
    Cost: 2 calls of f per element of every input.
    """
    if not callable(f):
        raise TypeError(f"numerical_grad: f must be a function of the inputs, got {type(f).__name__}.")
    if not inputs:
        raise ValueError("numerical_grad: pass at least one input tensor after f, e.g. numerical_grad(f, x, w).")
    step = positive_number(eps)
    if step is None or step >= 1:
        raise ValueError(f"numerical_grad: eps must be a positive number below 1 (a relative step), got {eps!r}; "
                         f"the default 1e-6 suits float64.")
    points = []
    for i, x in enumerate(inputs):
        what = f"numerical_grad: input {i}"
        require_float_tensor(x, what)
        bad = ~torch.isfinite(x.detach())
        if bool(bad.any()):
            first = [int(j) for j in torch.nonzero(bad)[0]] if x.dim() else []
            value = x.detach()[tuple(first)].item()
            raise ValueError(f"{what} holds {int(bad.sum())} non-finite value(s) ({value} at {first}); finite "
                             f"differences need finite inputs. Find where the NaN or inf came from first.")
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
            largest = flat_p.abs().max().item() if flat_p.numel() else 0.0
            rms = largest * (flat_p / largest).square().mean().sqrt().item() if largest > 0 else 0.0
            scale = rms if rms > 0 else 1.0   # an all-zero input: an absolute step of eps
            for k in range(flat_p.numel()):
                original = flat_p[k].item()
                h = step * max(abs(original), scale)
                above, below = original + h, original - h
                flat_p[k] = above
                up = evaluate()
                flat_p[k] = below
                down = evaluate()
                flat_p[k] = original
                flat_g[k] = (up - down) / (above - below)   # the step actually taken
            grads.append(g)
    return tuple(grads)

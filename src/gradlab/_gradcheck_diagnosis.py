"""Why a gradient check failed: NaN or inf, the likely cause, a wrong directional derivative.

Private to :mod:`gradlab.gradient_check`, which runs gradcheck and gradgradcheck and, when one
fails, asks these functions what most likely went wrong so that its report can say so.
"""
from __future__ import annotations

import math
from typing import Callable

import torch


def _non_finite(inputs: list, outputs) -> str:
    for i, p in enumerate(inputs):
        if isinstance(p, torch.Tensor) and p.is_floating_point():
            bad = ~torch.isfinite(p)
            if bool(bad.any()):
                return f"input {i} holds NaN or inf ({int(bad.sum())} of {p.numel()} elements)"
    outs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    for k, o in enumerate(outs):
        if o.is_floating_point():
            bad = ~torch.isfinite(o)
            if bool(bad.any()):
                return (f"output {k} is NaN or inf at these inputs "
                        f"({int(bad.sum())} of {o.numel()} elements)")
    return ""


def _flat_outputs(g: Callable, args: list) -> torch.Tensor:
    out = g(*args)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return torch.cat([o.detach().reshape(-1).to(torch.float64) for o in outs if o.is_floating_point()])


def _diagnose(g: Callable, args: list, eps: float, atol: float, rtol: float) -> tuple[str, str]:
    """After gradcheck failed on ``g`` at ``args``: the likely cause and what points to it."""
    # NaN in the backward pass?
    with torch.enable_grad():
        leaves = [a.detach().clone().requires_grad_(True) if isinstance(a, torch.Tensor)
                  and a.is_floating_point() else a for a in args]
        out = g(*leaves)
        outs = [o for o in (out if isinstance(out, (tuple, list)) else (out,)) if o.requires_grad]
        wrt = [p for p in leaves if isinstance(p, torch.Tensor) and p.requires_grad]
        try:
            grads = torch.autograd.grad(outs, wrt, [torch.ones_like(o) for o in outs], allow_unused=True)
        except Exception:   # noqa: BLE001 - the failure itself is reported elsewhere
            grads = ()
        for i, gr in enumerate(grads):
            if gr is not None and not bool(torch.isfinite(gr).all()):
                return "NaN", f"the backward pass returns NaN or inf for input {i}"
    # Kinks and rounding: one-sided and central differences, element by element.
    with torch.no_grad():
        base = _flat_outputs(g, args)
        for i, a in enumerate(args):
            if not (isinstance(a, torch.Tensor) and a.is_floating_point()):
                continue
            flat = a.detach().clone().reshape(-1)
            for k in range(flat.numel()):
                def at(delta: float) -> torch.Tensor:
                    moved = flat.clone()
                    moved[k] += delta
                    call_args = list(args)
                    call_args[i] = moved.reshape(a.shape)
                    return _flat_outputs(g, call_args)
                up, down = at(eps), at(-eps)
                if not up.numel():
                    continue
                index = [int(j) for j in torch.unravel_index(torch.tensor(k), a.shape)] if a.dim() else []
                where = f"input {i} element {index}"
                right, left = (up - base) / eps, (base - down) / eps
                size = max(right.abs().max().item(), left.abs().max().item(), 1.0)
                if (right - left).abs().max().item() > 1e-2 * size:
                    # The slopes on either side differ: a kink if each side keeps its slope over a
                    # longer step, rounding noise if not.
                    right8, left8 = (at(8 * eps) - base) / (8 * eps), (base - at(-8 * eps)) / (8 * eps)
                    steady = max((right - right8).abs().max().item(), (left - left8).abs().max().item())
                    if steady <= 1e-2 * size:
                        return "a kink", f"{where}: the slopes on either side differ (a kink within a step)"
                    return "scale", f"{where}: the one-sided slopes change with the step size (rounding)"
                # Rounding that hides the change altogether: compare with a 100 times longer step.
                central = (up - down) / (2 * eps)
                longer = (at(100 * eps) - at(-100 * eps)) / (200 * eps)
                if bool(((central - longer).abs() > atol + rtol * longer.abs()).any()):
                    return "scale", f"{where}: finite differences change with the step size (rounding)"
    return "the derivation", "the function is smooth and finite here, so the backward pass is wrong"


def _directional_mismatch(g: Callable, args: list, eps: float, rtol: float) -> int | None:
    """After gradcheck passed: the first input whose gradient is wrong at its own scale, or None.

    gradcheck's ``atol`` applies to the whole Jacobian in units of the largest output, so an input
    whose influence on the outputs is below ``atol`` of them (a bias of 1 added to products of
    1e3) could have any gradient at all. Here each input is checked on its own: one random
    direction ``v`` (entries in [-1, 1], so the step never exceeds gradcheck's) and one random
    upstream weighting ``w``; the backward pass's ``w . J v`` must match the central difference of
    ``w . g`` along ``v`` to ``rtol`` of itself, beyond the rounding noise (estimated from the sum
    of the outputs' magnitudes and from a step 4 times longer, whichever is larger).
    """
    gen = torch.Generator().manual_seed(0)
    floats = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.is_floating_point()]
    with torch.enable_grad():
        leaves = [a.detach().clone().requires_grad_(True) if i in floats else a for i, a in enumerate(args)]
        out = g(*leaves)
        outs = [o for o in (out if isinstance(out, (tuple, list)) else (out,))
                if isinstance(o, torch.Tensor) and o.requires_grad]
        if not outs:
            return None
        ws = [torch.rand(o.shape, generator=gen, dtype=torch.float64).to(o.dtype) * 2 - 1 for o in outs]
        grads = torch.autograd.grad(outs, [leaves[i] for i in floats], ws, allow_unused=True)
    sizes = [o.detach().abs() for o in outs]

    def weighted(call_args) -> float:
        res = g(*call_args)
        res = [o for o in (res if isinstance(res, (tuple, list)) else (res,))
               if isinstance(o, torch.Tensor) and o.is_floating_point()]
        return float(sum((w * o.detach()).sum() for w, o in zip(ws, res)))

    noise = 16 * 2.0 ** -53 * float(sum((w.abs() * m).sum() for w, m in zip(ws, sizes))) / eps
    with torch.no_grad():
        for k, i in enumerate(floats):
            v = torch.rand(args[i].shape, generator=gen, dtype=torch.float64).to(args[i].dtype) * 2 - 1
            analytic = float((grads[k] * v).sum()) if grads[k] is not None else 0.0

            def along(step: float) -> float:
                moved = [a.detach() + step * v if j == i else a for j, a in enumerate(args)]
                return weighted(moved)

            numeric = (along(eps) - along(-eps)) / (2 * eps)
            longer = (along(4 * eps) - along(-4 * eps)) / (8 * eps)
            allowed = rtol * abs(numeric) + max(noise, 4 * abs(numeric - longer))
            if not math.isfinite(numeric) or abs(analytic - numeric) > allowed:
                return i
    return None

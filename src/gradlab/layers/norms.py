"""Chapter 10's layers: layer normalisation, batch normalisation (training and evaluation) and embedding.

The conventions (``(out, cache)`` from a forward, ``(dx, grads)`` from a backward, one dtype) are
those of :mod:`gradlab.layers`. Layer norm works on any shape ``(..., D)``; batch norm on a batch
``(N, D)``; embedding on token ids of any shape.
"""
from __future__ import annotations

from typing import Mapping

import torch

from .._validate import is_real_number, require_float_tensor, require_tensor, shape_str
from ._checks import require_batch, require_cache, require_eps, require_upstream, require_vector, saving

__all__ = ["layer_norm_forward", "layer_norm_backward", "batch_norm_forward", "batch_norm_backward",
           "embedding_forward", "embedding_backward"]


def _normalise(x: torch.Tensor, dim: int, eps: float):
    mean = x.mean(dim, keepdim=True)
    var = ((x - mean) ** 2).mean(dim, keepdim=True)          # biased: divide by the count
    rstd = torch.rsqrt(var + eps)
    return (x - mean) * rstd, rstd, var


def _normalise_backward(dxhat: torch.Tensor, xhat: torch.Tensor, rstd: torch.Tensor, dim: int):
    # dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), means over the normalised dim:
    # the first term is the direct path, the second the path through the mean, the third the
    # path through the variance.
    return rstd * (dxhat - dxhat.mean(dim, keepdim=True) - xhat * (dxhat * xhat).mean(dim, keepdim=True))


def _affine_grads(dout: torch.Tensor, xhat: torch.Tensor) -> dict:
    """``gamma`` and ``beta`` act on the last dimension: their gradients sum over all the others."""
    d = dout.shape[-1]
    return {"gamma": (dout * xhat).reshape(-1, d).sum(0), "beta": dout.reshape(-1, d).sum(0)}


def layer_norm_forward(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5):
    """Layer normalisation over the last dimension of ``x``, then a scale and a shift per feature.

    ``out[..., :] = (x[..., :] - mean) / sqrt(var + eps) * gamma + beta`` with the mean and the
    biased variance over the last dimension, as ``F.layer_norm(x, (D,), gamma, beta, eps)``.
    Shapes: ``x`` (..., D), any number of leading dimensions ((D,), (N, D), (B, T, D), ...);
    ``gamma``/``beta`` (D,). The cache keeps the normalised ``xhat``, ``1/std`` per row and ``gamma``.
    """
    fn = "layer_norm_forward"
    x = require_float_tensor(x, f"{fn}: x")
    if x.dim() == 0:
        raise ValueError(f"{fn}: x must have at least one dimension, the features it normalises over "
                         f"(shape (..., D)), got a 0-dim tensor; use x.reshape(1, 1) or x.unsqueeze(0).")
    eps = require_eps(eps, fn)
    d = x.shape[-1]
    gamma = require_vector(gamma, d, "gamma", fn, x.dtype)
    beta = require_vector(beta, d, "beta", fn, x.dtype)
    xhat, rstd, _ = _normalise(x, -1, eps)
    out = xhat * gamma + beta
    return out, saving("layer_norm", out.shape, xhat=xhat.detach(), rstd=rstd.detach(), gamma=gamma.detach())


def layer_norm_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`layer_norm_forward` -> ``(dx, {"gamma": (D,), "beta": (D,)})``.

    ``dx = rstd * (g - mean_j g - xhat * mean_j(g * xhat))`` per row (means over the last
    dimension), with ``g = dout * gamma``; ``gamma`` and ``beta`` sum over every leading dimension.
    """
    fn = "layer_norm_backward"
    cache = require_cache(cache, "layer_norm", fn)
    dout = require_upstream(dout, cache, fn, dtype=cache["xhat"].dtype)
    with torch.no_grad():
        xhat = cache["xhat"]
        return _normalise_backward(dout * cache["gamma"], xhat, cache["rstd"], -1), _affine_grads(dout, xhat)


def _require_count(count, fn: str) -> torch.Tensor:
    count = require_tensor(count, f"{fn}: num_batches_tracked")
    if count.dim() != 0 or count.is_floating_point() or count.is_complex() or count.dtype == torch.bool:
        raise TypeError(f"{fn}: num_batches_tracked must be a 0-dim integer tensor, the number of training "
                        f"batches seen (nn.BatchNorm1d's buffer), e.g. torch.tensor(0); got dtype {count.dtype}, "
                        f"shape {shape_str(count)}.")
    return count


def batch_norm_forward(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5,
                       running_mean: torch.Tensor | None = None, running_var: torch.Tensor | None = None,
                       momentum: float | None = 0.1, *, training: bool = True,
                       num_batches_tracked: torch.Tensor | None = None):
    """Batch normalisation of a batch ``x`` (N, D): each feature normalised over the batch.

    As ``F.batch_norm(x, running_mean, running_var, gamma, beta, training, momentum, eps)``, and as
    ``nn.BatchNorm1d`` for ``momentum=None`` and ``num_batches_tracked``.

    * ``training=True``: the output uses the batch's mean and biased variance (N >= 2).
      ``running_mean``/``running_var``, if given (both or neither), are updated in place, without
      gradient: ``running = (1 - m) * running + m * batch value``, with the unbiased variance and
      ``m = momentum``. ``num_batches_tracked``, if given, is incremented; ``momentum=None`` makes
      ``m = 1 / num_batches_tracked``, a cumulative average of every batch seen (it needs the count).
    * ``training=False`` (evaluation): the output uses the running statistics, which are required
      and not changed; each feature is then a fixed affine map and any N >= 1 works.

    Shapes: ``x`` (N, D); ``gamma``, ``beta``, running statistics (D,), one dtype.
    Every argument is checked before any statistic changes.
    """
    fn = "batch_norm_forward"
    x = require_float_tensor(x, f"{fn}: x")
    require_batch(x, f"{fn}: x")
    if not isinstance(training, bool):
        raise TypeError(f"{fn}: training must be True (batch statistics) or False (running statistics), "
                        f"got {training!r}.")
    n, d = x.shape
    if training and n < 2:
        raise ValueError(f"{fn}: x has a batch of 1 (shape {shape_str(x)}); training-mode batch norm needs "
                         f"at least 2 rows per feature to estimate a variance. Use a larger batch, "
                         f"training=False with running statistics, or layer norm.")
    eps = require_eps(eps, fn)
    if momentum is not None and (not is_real_number(momentum) or not 0 <= momentum <= 1):
        raise ValueError(f"{fn}: momentum must be a number in [0, 1] (the weight of the new batch in the "
                         f"running statistics, 0.1 by default) or None (a cumulative average), got {momentum!r}.")
    gamma = require_vector(gamma, d, "gamma", fn, x.dtype)
    beta = require_vector(beta, d, "beta", fn, x.dtype)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{fn}: give both running_mean and running_var, or neither (as F.batch_norm).")
    if running_mean is not None:
        running_mean = require_vector(running_mean, d, "running_mean", fn, x.dtype)
        running_var = require_vector(running_var, d, "running_var", fn, x.dtype)
    elif not training:
        raise ValueError(f"{fn}: evaluation mode (training=False) normalises with running_mean and running_var, "
                         f"so pass both (the statistics tracked during training).")
    if num_batches_tracked is not None:
        num_batches_tracked = _require_count(num_batches_tracked, fn)
        if running_mean is None:
            raise ValueError(f"{fn}: num_batches_tracked counts the updates of running_mean and running_var; "
                             f"pass them too, or leave num_batches_tracked out.")
    if training and momentum is None and running_mean is not None and num_batches_tracked is None:
        raise ValueError(f"{fn}: momentum=None averages every batch seen, which needs their number: pass "
                         f"num_batches_tracked=torch.tensor(0) on the first call and the same tensor after.")

    if not training:
        rstd = torch.rsqrt(running_var.detach() + eps)
        xhat = (x - running_mean.detach()) * rstd
        out = xhat * gamma + beta
        return out, saving("batch_norm", out.shape, xhat=xhat.detach(), rstd=rstd, gamma=gamma.detach(),
                           training=False)
    xhat, rstd, var = _normalise(x, 0, eps)
    out = xhat * gamma + beta
    if running_mean is not None:   # every check passed: now the statistics may change
        with torch.no_grad():
            m = momentum
            if num_batches_tracked is not None:
                num_batches_tracked.add_(1)
                if momentum is None:
                    m = 1.0 / float(num_batches_tracked)
            running_mean.mul_(1 - m).add_(m * x.detach().mean(0))
            running_var.mul_(1 - m).add_(m * var.detach().reshape(-1) * (n / (n - 1)))
    return out, saving("batch_norm", out.shape, xhat=xhat.detach(), rstd=rstd.detach(), gamma=gamma.detach(),
                       training=True)


def batch_norm_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`batch_norm_forward` -> ``(dx, {"gamma": (D,), "beta": (D,)})``.

    Training mode: the layer-norm formula with the roles of rows and columns swapped (means over
    the batch). Evaluation mode: the statistics are constants, so ``dx = dout * gamma * rstd``,
    with no mean terms and no coupling between examples.
    """
    fn = "batch_norm_backward"
    cache = require_cache(cache, "batch_norm", fn)
    dout = require_upstream(dout, cache, fn, dtype=cache["xhat"].dtype)
    with torch.no_grad():
        xhat, dxhat = cache["xhat"], dout * cache["gamma"]
        dx = _normalise_backward(dxhat, xhat, cache["rstd"], 0) if cache["training"] else dxhat * cache["rstd"]
        return dx, _affine_grads(dout, xhat)


def embedding_forward(ids: torch.Tensor, W: torch.Tensor):
    """Look up rows of the table ``W`` (V, D): ``out[..., :] = W[ids[...]]``, shape ``(*ids.shape, D)``.

    ``ids`` holds integer token ids in [0, V), any shape, any integer dtype (as ``F.embedding``).
    """
    fn = "embedding_forward"
    ids = require_tensor(ids, f"{fn}: ids")
    W = require_float_tensor(W, f"{fn}: W")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{fn}: ids must be integer token ids (e.g. dtype torch.long), got dtype {ids.dtype}; "
                        f"convert with ids.long() (a boolean tensor is a mask, not ids).")
    if W.dim() != 2:
        raise ValueError(f"{fn}: W must be a table of shape (V, D), one row per token, got {shape_str(W)}.")
    ids = ids.long()
    v = W.shape[0]
    if ids.numel() and bool(((ids < 0) | (ids >= v)).any()):
        raise ValueError(f"{fn}: ids must lie in [0, {v}) for a table W of shape {shape_str(W)}, got ids from "
                         f"{ids.min().item()} to {ids.max().item()}.")
    out = W[ids]
    return out, saving("embedding", out.shape, ids=ids, table_shape=tuple(W.shape), dtype=W.dtype)


def embedding_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`embedding_forward` -> ``(None, {"W": (V, D)})``: a scatter-add.

    Row ``t`` of ``dW`` is the sum of the upstream rows of every position that looked up token ``t``,
    so a token used twice accumulates twice; rows never looked up stay zero. Token ids have no
    gradient, hence ``None``.
    """
    cache = require_cache(cache, "embedding", "embedding_backward")
    dout = require_upstream(dout, cache, "embedding_backward", dtype=cache["dtype"])
    with torch.no_grad():
        v, d = cache["table_shape"]
        dW = torch.zeros(v, d, dtype=dout.dtype, device=dout.device)
        dW.index_add_(0, cache["ids"].reshape(-1), dout.reshape(-1, d))
        return None, {"W": dW}

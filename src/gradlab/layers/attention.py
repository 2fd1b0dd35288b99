"""Chapter 11's layer: scaled dot-product attention with batch and heads, and the softmax VJP.

The conventions (``(out, cache)`` from a forward, one gradient per input from a backward, one
dtype) are those of :mod:`gradlab.layers`.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch

from .._printed import format_shape
from .._validate import require_float_tensor, require_same_dtype, require_tensor, shape_str
from ._checks import require_cache, require_upstream, saving

__all__ = ["attention_forward", "attention_backward", "softmax_backward"]


def _softmax_vjp(dp: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return p * (dp - (dp * p).sum(-1, keepdim=True))


def softmax_backward(dp: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The row-softmax VJP: ``dz = p * (dp - sum_j(dp * p))`` along the last dimension.

    ``p`` is the softmax output, ``dp`` = dL/dp the upstream gradient: the same shape (no
    broadcasting: a gradient always has the shape of what it differentiates) and the same dtype.
    """
    fn = "softmax_backward"
    dp, p = require_float_tensor(dp, f"{fn}: dp"), require_float_tensor(p, f"{fn}: p")
    if dp.shape != p.shape:
        raise ValueError(f"{fn}: dp has shape {shape_str(dp)} but p has shape {shape_str(p)}; the upstream "
                         f"gradient dL/dp has the shape of p (broadcasting would silently give a wrong dz).")
    require_same_dtype(fn, ("dp", dp), ("p", p))
    with torch.no_grad():
        return _softmax_vjp(dp, p)


def _bool_mask(m, what: str, fn: str) -> torch.Tensor:
    m = require_tensor(m, f"{fn}: {what}")
    if m.dtype != torch.bool:
        raise TypeError(f"{fn}: {what} must be a boolean tensor, got dtype {m.dtype}; for a 0/1 tensor use "
                        f"{what}.bool().")
    return m


def _keep(mask, key_padding_mask, causal: bool, ones: int, t: int, s: int, device):
    """Where a query may attend to a key, broadcastable to (*, T, S); None if everywhere.

    ``ones`` is the number of dimensions between a batched key-padding mask's B and S: len(*).
    """
    keep = mask
    if key_padding_mask is not None:   # (B, S) -> (B, 1, ..., 1, S); (S,) stays
        kp = ~key_padding_mask
        if kp.dim() == 2:
            kp = kp.reshape(kp.shape[0], *([1] * ones), kp.shape[1])
        keep = kp if keep is None else keep & kp
    if causal:   # query i sees keys 0..i (top-left aligned, as F.scaled_dot_product_attention)
        tri = torch.ones(t, s, dtype=torch.bool, device=device).tril()
        keep = tri if keep is None else keep & tri
    return keep


def attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
                      mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                      save: str = "probs"):
    """Scaled dot-product attention ``softmax(q @ k^T / sqrt(d) [masked]) @ v``, per batch and head.

    As ``F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)``.
    Shapes: ``q`` (*, T, d), ``k`` (*, S, d), ``v`` (*, S, d_v) -> ``out`` (*, T, d_v), where ``*``
    is the same leading dimensions for all three: none (one head), (B,), or (B, H) for a batch of
    B sequences with H heads each.

    * ``mask``: boolean, broadcastable to (*, T, S), **True where a query may attend** to a key
      (SDPA's ``attn_mask``).
    * ``key_padding_mask``: boolean (B, S) (or (S,) for one sequence), **True at a padding key**,
      which no query of that sequence sees (the convention of ``nn.MultiheadAttention``).
    * ``causal=True``: query i sees keys 0..i. PyTorch refuses a mask together with
      ``is_causal=True``; here they combine: a query sees the keys every given mask allows.

    Each query must see at least one key. ``save="probs"`` keeps the (*, T, S) probabilities for
    backward; ``save="logsumexp"`` keeps only each row's log-normaliser (*, T, 1) and rebuilds the
    probabilities in backward (the recompute idea of memory-efficient attention): it stores no
    (T, S) tensor of its own, and the causal mask is rebuilt too (a given mask is kept by reference).
    """
    fn = "attention_forward"
    q, k, v = (require_float_tensor(t, f"{fn}: {n}") for t, n in ((q, "q"), (k, "k"), (v, "v")))
    for t, n, dims in ((q, "q", "(*, T, d)"), (k, "k", "(*, S, d)"), (v, "v", "(*, S, d_v)")):
        if t.dim() < 2:
            raise ValueError(f"{fn}: {n} must have shape {dims} (a sequence of vectors, after any batch and "
                             f"head dimensions), got {shape_str(t)}.")
    lead = q.shape[:-2]
    if k.shape[:-2] != lead or v.shape[:-2] != lead:
        raise ValueError(f"{fn}: q {shape_str(q)}, k {shape_str(k)} and v {shape_str(v)} must have the same "
                         f"leading (batch, head) dimensions; to share k and v across heads, expand them "
                         f"first, e.g. k.expand({', '.join(map(str, lead))}, -1, -1).")
    if k.shape[-1] != q.shape[-1] or v.shape[-2] != k.shape[-2]:
        raise ValueError(f"{fn}: q {shape_str(q)}, k {shape_str(k)} and v {shape_str(v)} do not fit: q and k "
                         f"need the same width d, k and v the same number of keys S.")
    require_same_dtype(fn, ("q", q), ("k", k), ("v", v))
    if save not in ("probs", "logsumexp"):
        raise ValueError(f"{fn}: save must be 'probs' or 'logsumexp', got {save!r}.")
    if not isinstance(causal, bool):
        raise TypeError(f"{fn}: causal must be True or False, got {causal!r}.")
    t, s = q.shape[-2], k.shape[-2]
    full = (*lead, t, s)
    if mask is not None:
        mask = _bool_mask(mask, "mask", fn)
        try:
            fits = torch.broadcast_shapes(mask.shape, full) == full
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"{fn}: mask must have shape {format_shape(full)} (queries x keys) or "
                             f"broadcast to it, e.g. ({t}, {s}) for every batch and head; got {shape_str(mask)}.")
    if key_padding_mask is not None:
        key_padding_mask = _bool_mask(key_padding_mask, "key_padding_mask", fn)
        want = (lead[0], s) if lead else (s,)
        if tuple(key_padding_mask.shape) != want:
            raise ValueError(f"{fn}: key_padding_mask must have shape {format_shape(want)}, one row per "
                             f"sequence and one entry per key (True = padding), got {shape_str(key_padding_mask)}.")
    keep = _keep(mask, key_padding_mask, causal, len(lead), t, s, q.device)
    seen = None if keep is None else keep.expand(full).any(-1)     # (*, T): does a query see any key?
    if seen is not None and not bool(seen.all()):
        where = (~seen).nonzero()[0].tolist()
        at = f" of batch/head {tuple(where[:-1])}" if len(where) > 1 else ""
        raise ValueError(f"{fn}: the masks hide every key from query {where[-1]}{at}; each query must see at "
                         f"least one key (its softmax would be 0/0). Check the mask's convention: True = "
                         f"may attend in mask, True = padding in key_padding_mask.")
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q @ k.mT) * scale
    if keep is not None:
        scores = scores.masked_fill(~keep, float("-inf"))
    del keep                                                  # the cache keeps no (T, S) mask of its own
    lse = torch.logsumexp(scores, dim=-1, keepdim=True)       # max-shifted inside: no overflow
    probs = torch.exp(scores - lse)
    out = probs @ v
    saved = {"probs": probs.detach()} if save == "probs" else {"lse": lse.detach()}
    return out, saving("attention", out.shape, q=q.detach(), k=k.detach(), v=v.detach(), scale=scale,
                       causal=causal, mask=mask, key_padding_mask=key_padding_mask, **saved)


def attention_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`attention_forward` -> ``(dq, dk, dv)``, shapes (*, T, d), (*, S, d), (*, S, d_v).

    Attention has three inputs and no parameters, so it returns one gradient per input.
    ``dv = P^T @ dout``; ``dP = dout @ v^T``; ``dS = softmax_backward(dP, P) * scale``;
    ``dq = dS @ k``; ``dk = dS^T @ q`` (transposes of the last two dimensions, per batch and head).
    A masked position has ``P = 0``, so its ``dS`` is exactly 0.
    """
    cache = require_cache(cache, "attention", "attention_backward")
    dout = require_upstream(dout, cache, "attention_backward", dtype=cache["q"].dtype)
    with torch.no_grad():
        q, k, v, scale = cache["q"], cache["k"], cache["v"], cache["scale"]
        if "probs" in cache:
            p = cache["probs"]
        else:   # rebuild the scores, the mask and the probabilities from the saved log-normalisers
            scores = (q @ k.mT) * scale
            keep = _keep(cache["mask"], cache["key_padding_mask"], cache["causal"], q.dim() - 2,
                         q.shape[-2], k.shape[-2], q.device)
            if keep is not None:
                scores = scores.masked_fill(~keep, float("-inf"))
            p = torch.exp(scores - cache["lse"])
        ds = _softmax_vjp(dout @ v.mT, p) * scale
        return ds @ k, ds.mT @ q, p.mT @ dout

"""Argument checks shared by the layers of chapters 07, 10 and 11, and the caches' version counters.

Every error names the function, the argument and its shape or dtype, and says what to do. Each
check runs before anything changes state (running statistics, caches).

A cache remembers the version counter (``torch.Tensor._version``, chapter 02) of every tensor it
holds; ``detach()`` shares the counter with the original. The backward function checks them first:
an input changed in place after the forward pass (``gamma.mul_(2)``) would give a silently wrong
gradient, so it is refused, as PyTorch refuses it.
"""
from __future__ import annotations

from typing import Mapping

import torch

from .._printed import format_shape
from .._validate import positive_number, require_float_tensor, shape_str

#: What a saved tensor is called in an error, by cache key (an argument's name unless listed).
_SAVED_AS = {"out": "the forward output", "probs": "the saved probabilities", "diff": "pred - target",
             "xhat": "the normalised x", "rstd": "the saved 1/std", "lse": "the saved log-sum-exp"}


def require_batch(t: torch.Tensor, what: str, features: str = "D") -> None:
    if t.dim() != 2:
        raise ValueError(
            f"{what} must be a batch of shape (N, {features}) (batch first), got shape {shape_str(t)}. "
            f"For a single example of shape (D,), add the batch dimension with .unsqueeze(0)."
        )
    if t.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch (shape {shape_str(t)}): pass at least one example.")


def saving(op: str, out_shape, **saved) -> dict:
    """A cache for ``op``: the saved entries, the output's shape and each saved tensor's version."""
    cache = {"op": op, **saved, "out_shape": tuple(out_shape)}
    cache["versions"] = {k: t._version for k, t in saved.items() if isinstance(t, torch.Tensor)}
    return cache


def require_cache(cache, op: str, fn: str) -> Mapping:
    if not isinstance(cache, Mapping) or "op" not in cache:
        raise TypeError(f"{fn}: cache must be the dict returned by {op}_forward, got {type(cache).__name__}.")
    if cache["op"] != op:
        raise ValueError(
            f"{fn}: this cache was made by {cache['op']}_forward, not {op}_forward. "
            f"Pass each layer's cache to the backward function of the same layer."
        )
    for key, version in cache.get("versions", {}).items():
        now = cache[key]._version
        if now != version:
            what = _SAVED_AS.get(key, key)
            raise RuntimeError(
                f"{fn}: {what} ({key}, shape {shape_str(cache[key])}) was changed in place after "
                f"{op}_forward saved it (version {version} -> {now}), so this backward would silently use "
                f"the new values. Call {op}_forward again after the change, or change a copy "
                f"({key} = {key} * 2 rather than {key} *= 2).")
    return cache


def require_upstream(dout, cache: Mapping, fn: str, name: str = "dout",
                     dtype: torch.dtype | None = None) -> torch.Tensor:
    dout = require_float_tensor(dout, f"{fn}: {name}")
    if tuple(dout.shape) != cache["out_shape"]:
        raise ValueError(
            f"{fn}: {name} has shape {shape_str(dout)}, but the forward output had shape "
            f"{format_shape(cache['out_shape'])}. The upstream gradient dL/d(out) always has the shape of out."
        )
    if dtype is not None and dout.dtype != dtype:
        raise TypeError(
            f"{fn}: {name} has dtype {dout.dtype}, but the forward pass ran in {dtype}. "
            f"Give the upstream gradient the dtype of the forward output, e.g. {name}.to({dtype})."
        )
    return dout


def require_vector(t, n: int, what: str, fn: str, dtype: torch.dtype) -> torch.Tensor:
    t = require_float_tensor(t, f"{fn}: {what}")
    if tuple(t.shape) != (n,):
        raise ValueError(f"{fn}: {what} must have shape ({n},), one entry per feature, got {shape_str(t)}.")
    if t.dtype != dtype:
        raise TypeError(f"{fn}: {what} has dtype {t.dtype} but x has {dtype}; convert one, e.g. .to(x.dtype).")
    return t


def require_eps(eps, fn: str) -> float:
    checked = positive_number(eps)
    if checked is None:
        raise ValueError(f"{fn}: eps must be a small positive number such as 1e-5, got {eps!r}.")
    return checked

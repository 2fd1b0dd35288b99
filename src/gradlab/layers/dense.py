"""Chapter 07's layers: the affine layer, the activations, the losses and L2 penalty, and the MLP.

The conventions (``(out, cache)`` from a forward, ``(dx, grads)`` from a backward, batch first,
one dtype) are those of :mod:`gradlab.layers`.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch

from .._validate import (is_integer, is_real_number, require_float_tensor, require_same_dtype,
                         require_same_shape, require_tensor, shape_str)
from ._checks import require_batch, require_cache, require_upstream, saving

__all__ = [
    "linear_forward", "linear_backward",
    "relu_forward", "relu_backward",
    "sigmoid_forward", "sigmoid_backward",
    "tanh_forward", "tanh_backward",
    "mse_forward", "mse_backward",
    "bce_with_logits_forward", "bce_with_logits_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
    "l2_penalty_forward", "l2_penalty_backward",
    "ACTIVATIONS", "init_mlp", "mlp_forward", "mlp_backward", "mlp_loss_and_grads",
]


# --------------------------------------------------------------------------------------------------
# affine layer


def linear_forward(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor):
    """Affine layer ``out = x @ W + b``.

    Shapes: ``x`` (N, D_in), ``W`` (D_in, D_out), ``b`` (D_out,) -> ``out`` (N, D_out).
    The cache keeps ``x`` and ``W``.
    """
    fn = "linear_forward"
    x, W, b = require_float_tensor(x, f"{fn}: x"), require_float_tensor(W, f"{fn}: W"), require_float_tensor(b, f"{fn}: b")
    require_batch(x, f"{fn}: x", "D_in")
    if W.dim() != 2:
        raise ValueError(f"{fn}: W must have shape (D_in, D_out), got {shape_str(W)}.")
    if x.shape[1] != W.shape[0]:
        raise ValueError(
            f"{fn}: x has shape {shape_str(x)} (D_in = {x.shape[1]}) but W has shape {shape_str(W)} "
            f"(D_in = {W.shape[0]}). W must have one row per input feature: shape ({x.shape[1]}, D_out)."
        )
    if tuple(b.shape) != (W.shape[1],):
        raise ValueError(
            f"{fn}: b must have shape ({W.shape[1]},), one bias per output feature of W {shape_str(W)}, "
            f"got {shape_str(b)}."
        )
    require_same_dtype(fn, ("x", x), ("W", W), ("b", b))
    out = x @ W + b
    return out, saving("linear", out.shape, x=x.detach(), W=W.detach())


def linear_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`linear_forward`: ``dx = dout @ W.T``, ``dW = x.T @ dout``, ``db = dout.sum(0)``.

    Shapes: ``dout`` (N, D_out) -> ``dx`` (N, D_in), ``{"W": (D_in, D_out), "b": (D_out,)}``.
    ``b`` was added to every row, so its gradient sums over the batch.
    """
    cache = require_cache(cache, "linear", "linear_backward")
    dout = require_upstream(dout, cache, "linear_backward", dtype=cache["W"].dtype)
    with torch.no_grad():
        x, W = cache["x"], cache["W"]
        return dout @ W.T, {"W": x.T @ dout, "b": dout.sum(0)}


# --------------------------------------------------------------------------------------------------
# element-wise activations (any shape)


def relu_forward(x: torch.Tensor):
    """``out = max(x, 0)`` element-wise; any shape.

    The cache keeps the mask where the gradient passes: ``not (x <= 0)``, i.e. ``x > 0`` or NaN
    (PyTorch passes the gradient of a NaN input through).
    """
    x = require_float_tensor(x, "relu_forward: x")
    out = torch.relu(x)
    return out, saving("relu", out.shape, mask=~(x <= 0).detach())


def relu_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`relu_forward`: ``dx = dout`` where ``x > 0``, else 0.

    At ``x == 0`` exactly, ReLU has no derivative; like PyTorch, we use the subgradient 0.
    The gradient is selected (``torch.where``), not multiplied by a 0/1 mask, so an infinite
    ``dout`` gives 0 where ``x <= 0`` (not NaN), as in PyTorch. Returns ``(dx, {})``.
    """
    cache = require_cache(cache, "relu", "relu_backward")
    dout = require_upstream(dout, cache, "relu_backward")
    with torch.no_grad():
        return torch.where(cache["mask"], dout, torch.zeros_like(dout)), {}


def sigmoid_forward(x: torch.Tensor):
    """``out = 1 / (1 + exp(-x))`` element-wise; any shape. The cache keeps ``out``."""
    x = require_float_tensor(x, "sigmoid_forward: x")
    out = torch.sigmoid(x)  # stable for large |x|: never exp() of a large positive number
    return out, saving("sigmoid", out.shape, out=out.detach())


def sigmoid_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`sigmoid_forward`: ``dx = dout * out * (1 - out)``. Returns ``(dx, {})``."""
    cache = require_cache(cache, "sigmoid", "sigmoid_backward")
    dout = require_upstream(dout, cache, "sigmoid_backward")
    with torch.no_grad():
        s = cache["out"]
        return dout * s * (1 - s), {}


def tanh_forward(x: torch.Tensor):
    """``out = tanh(x)`` element-wise; any shape. The cache keeps ``out``."""
    x = require_float_tensor(x, "tanh_forward: x")
    out = torch.tanh(x)
    return out, saving("tanh", out.shape, out=out.detach())


def tanh_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`tanh_forward`: ``dx = dout * (1 - out**2)``. Returns ``(dx, {})``."""
    cache = require_cache(cache, "tanh", "tanh_backward")
    dout = require_upstream(dout, cache, "tanh_backward")
    with torch.no_grad():
        t = cache["out"]
        return dout * (1 - t * t), {}


#: Activation name -> (forward, backward), as used by :func:`mlp_forward`.
ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "relu": (relu_forward, relu_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
}


# --------------------------------------------------------------------------------------------------
# losses and penalty


def _loss_cache(op: str, **saved) -> dict:
    return saving(op, (), **saved)


def mse_forward(pred: torch.Tensor, target: torch.Tensor):
    """Mean squared error ``mean((pred - target)**2)`` over every element.

    Shapes: ``pred`` and ``target`` identical (no broadcasting), at least one element -> 0-dim loss;
    both of one floating dtype.
    """
    fn = "mse_forward"
    pred, target = require_float_tensor(pred, f"{fn}: pred"), require_float_tensor(target, f"{fn}: target")
    require_same_shape(pred, f"{fn}: pred", target, "target",
                       "Make them identical, e.g. target.reshape(pred.shape): broadcasting (N, 1) against "
                       "(N,) would silently compare every prediction with every target.")
    require_same_dtype(fn, ("pred", pred), ("target", target))
    if pred.numel() == 0:
        raise ValueError(f"{fn}: pred is empty (shape {shape_str(pred)}); the mean of nothing is undefined.")
    diff = pred - target
    loss = (diff * diff).mean()
    return loss, _loss_cache("mse", diff=diff.detach(), count=pred.numel())


def mse_backward(cache: Mapping):
    """Backward of :func:`mse_forward`: ``dpred = 2 * (pred - target) / numel``, the shape of ``pred``.

    Computed as ``(pred - target) * (2 / numel)``: the factor is formed first, as PyTorch does, so
    ``2 * diff`` cannot overflow in float16.
    """
    cache = require_cache(cache, "mse", "mse_backward")
    with torch.no_grad():
        return cache["diff"] * (2.0 / cache["count"])


def bce_with_logits_forward(logits: torch.Tensor, targets: torch.Tensor):
    """Binary cross-entropy on logits, averaged over every element, computed stably.

    Per element, ``-[y log s(z) + (1 - y) log(1 - s(z))]`` with ``s`` the sigmoid equals
    ``max(z, 0) - z * y + log(1 + exp(-|z|))``, which never takes exp() of a large positive number
    nor log() of 0, so logits of +-100 (or more) are fine. The code computes the same value as
    ``(1 - y) * z - logsigmoid(z)``, which has no kink, so autograd differentiates it right
    everywhere, ``sigmoid(z) - y`` at ``z = 0`` too (``max`` and ``|z|`` have kinks at 0).
    Shapes: ``logits`` and ``targets`` identical, of one floating dtype; targets are probabilities
    in [0, 1].
    """
    fn = "bce_with_logits_forward"
    logits, targets = require_float_tensor(logits, f"{fn}: logits"), require_float_tensor(targets, f"{fn}: targets")
    require_same_shape(logits, f"{fn}: logits", targets, "targets",
                       "Give one target per logit, e.g. targets.reshape(logits.shape).")
    require_same_dtype(fn, ("logits", logits), ("targets", targets))
    if logits.numel() == 0:
        raise ValueError(f"{fn}: logits is empty (shape {shape_str(logits)}); pass at least one example.")
    if bool(torch.isnan(targets).any()):
        raise ValueError(f"{fn}: targets must be probabilities in [0, 1] (usually 0. or 1.), "
                         f"but {int(torch.isnan(targets).sum())} of the {targets.numel()} targets are NaN.")
    if bool(((targets < 0) | (targets > 1)).any()):
        raise ValueError(f"{fn}: targets must be probabilities in [0, 1] (usually 0. or 1.), "
                         f"but some lie outside; got values from {targets.min().item():.3g} to {targets.max().item():.3g}.")
    z = logits
    per_element = (1 - targets) * z - torch.nn.functional.logsigmoid(z)
    loss = per_element.mean()
    return loss, _loss_cache("bce_with_logits", probs=torch.sigmoid(z).detach(),
                             targets=targets.detach(), count=z.numel())


def bce_with_logits_backward(cache: Mapping):
    """Backward of :func:`bce_with_logits_forward`: ``dlogits = (sigmoid(z) - y) / numel``."""
    cache = require_cache(cache, "bce_with_logits", "bce_with_logits_backward")
    with torch.no_grad():
        return (cache["probs"] - cache["targets"]) / cache["count"]


def softmax_cross_entropy_forward(logits: torch.Tensor, labels: torch.Tensor):
    """Softmax followed by cross-entropy, averaged over the batch, computed stably.

    ``log p[i, k] = z[i, k] - m[i] - log(sum_j exp(z[i, j] - m[i]))`` with ``m[i] = max_j z[i, j]``
    (the max shift / log-sum-exp form), so every exp() argument is <= 0: no overflow, whatever the
    logits. ``loss = -mean_i log p[i, labels[i]]``.
    Shapes: ``logits`` (N, C) float; ``labels`` (N,) integer class indices in [0, C), of any integer
    dtype (uint8 included: always indices, never a mask), used as ``torch.long``.
    The cache keeps the probabilities ``p``.
    """
    fn = "softmax_cross_entropy_forward"
    logits = require_float_tensor(logits, f"{fn}: logits")
    require_batch(logits, f"{fn}: logits", "C")
    labels = require_tensor(labels, f"{fn}: labels")
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(
            f"{fn}: labels must be integer class indices (dtype torch.long), got dtype {labels.dtype}. "
            f"For one-hot rows use labels.argmax(1); for float indices use labels.long()."
        )
    n, c = logits.shape
    if tuple(labels.shape) != (n,):
        raise ValueError(f"{fn}: labels must have shape ({n},), one class index per row of logits "
                         f"{shape_str(logits)}, got {shape_str(labels)}.")
    if labels.dtype in (torch.uint16, torch.uint32, torch.uint64):
        labels = labels.to(torch.long)   # these support no comparisons; a huge uint64 turns negative
    if bool(((labels < 0) | (labels >= c)).any()):
        raise ValueError(f"{fn}: labels must lie in [0, {c}) for logits with {c} classes, "
                         f"got values from {labels.min().item()} to {labels.max().item()}.")
    if labels.dtype != torch.long:
        # Index with int64: a uint8 (or bool) index tensor would act as a mask, not as indices.
        labels = labels.to(torch.long)
    shifted = logits - logits.max(dim=1, keepdim=True).values
    log_probs = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
    rows = torch.arange(n, device=logits.device)
    loss = -log_probs[rows, labels].mean()
    return loss, _loss_cache("softmax_cross_entropy", probs=torch.exp(log_probs).detach(), labels=labels)


def softmax_cross_entropy_backward(cache: Mapping):
    """Backward of :func:`softmax_cross_entropy_forward`: ``dlogits = (p - onehot(labels)) / N``, shape (N, C)."""
    cache = require_cache(cache, "softmax_cross_entropy", "softmax_cross_entropy_backward")
    with torch.no_grad():
        p, labels = cache["probs"], cache["labels"]
        grad = p.clone()
        grad[torch.arange(p.shape[0], device=p.device), labels] -= 1
        return grad / p.shape[0]


def l2_penalty_forward(W: torch.Tensor, lam: float):
    """L2 penalty ``lam * sum(W**2)`` on one weight tensor (any shape) -> 0-dim tensor."""
    fn = "l2_penalty_forward"
    W = require_float_tensor(W, f"{fn}: W")
    if not is_real_number(lam) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"{fn}: lam must be a finite number >= 0 (the penalty strength), got {lam!r}.")
    return lam * (W * W).sum(), _loss_cache("l2_penalty", W=W.detach(), lam=float(lam))


def l2_penalty_backward(cache: Mapping):
    """Backward of :func:`l2_penalty_forward`: ``dW = 2 * lam * W``, the shape of ``W``."""
    cache = require_cache(cache, "l2_penalty", "l2_penalty_backward")
    with torch.no_grad():
        return 2 * cache["lam"] * cache["W"]


# --------------------------------------------------------------------------------------------------
# a small MLP: linear -> activation -> ... -> linear (logits)


def init_mlp(sizes: Sequence[int], *, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> dict:
    """Parameters of an MLP with layer widths ``sizes = [D_in, H1, ..., C]``.

    Returns ``{"W1": (D_in, H1), "b1": (H1,), ..., "WL": (H_{L-1}, C), "bL": (C,)}`` with
    ``W`` drawn from N(0, 2 / fan_in) (He initialisation, suited to ReLU) using ``generator``,
    and zero biases. The tensors do not require grad; call ``.requires_grad_()`` to use autograd.
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"init_mlp: generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), "
                        f"got {type(generator).__name__}.")
    given = sizes
    try:
        sizes = None if isinstance(sizes, str) else list(sizes)
    except TypeError:  # not iterable: a single number
        sizes = None
    if sizes is None or len(sizes) < 2 or not all(is_integer(s) and s >= 1 for s in sizes):
        raise ValueError(f"init_mlp: sizes must list at least two positive integers [D_in, ..., C], got {given!r}.")
    sizes = [int(s) for s in sizes]   # NumPy integers (np.int64) are integers too
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"init_mlp: dtype must be a floating-point torch dtype such as torch.float64, got {dtype!r}.")
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{i}"] = torch.randn(fan_in, fan_out, generator=generator, dtype=dtype) * math.sqrt(2.0 / fan_in)
        params[f"b{i}"] = torch.zeros(fan_out, dtype=dtype)
    return params


def _mlp_depth(params, fn: str) -> int:
    if not isinstance(params, Mapping):
        raise TypeError(f"{fn}: params must be a dict like the one init_mlp returns, got {type(params).__name__}.")
    depth = sum(1 for k in params if isinstance(k, str) and k.startswith("W"))
    expected = {f"{p}{i}" for i in range(1, depth + 1) for p in "Wb"}
    if depth == 0 or set(params) != expected:
        raise ValueError(f"{fn}: params must hold W1, b1, ..., WL, bL and nothing else, got keys {sorted(params)}.")
    for i in range(1, depth + 1):
        W, b = params[f"W{i}"], params[f"b{i}"]
        require_float_tensor(W, f"{fn}: W{i}")
        require_float_tensor(b, f"{fn}: b{i}")
        if W.dim() != 2 or tuple(b.shape) != (W.shape[1],):
            raise ValueError(f"{fn}: W{i} must be (D_in, D_out) and b{i} (D_out,), got W{i} {shape_str(W)}, "
                             f"b{i} {shape_str(b)}.")
        if i > 1 and params[f"W{i - 1}"].shape[1] != W.shape[0]:
            raise ValueError(f"{fn}: W{i - 1} {shape_str(params[f'W{i - 1}'])} outputs "
                             f"{params[f'W{i - 1}'].shape[1]} features but W{i} {shape_str(W)} expects {W.shape[0]}.")
    dtypes = {params[k].dtype for k in params}
    if len(dtypes) > 1:
        listing = ", ".join(f"{k} {params[k].dtype}" for k in sorted(params, key=lambda k: (int(k[1:]), k[0] != "W")))
        raise TypeError(f"{fn}: all parameters must share one dtype, got {listing}. Convert them, e.g. with .double().")
    return depth


def _activation_names(activation, hidden: int, fn: str) -> list[str]:
    if not isinstance(activation, (str, list, tuple)):
        raise TypeError(f"{fn}: activation must be a name from {sorted(ACTIVATIONS)} or a list of them, one per "
                        f"hidden layer, got {type(activation).__name__}.")
    names = [activation] * hidden if isinstance(activation, str) else list(activation)
    if len(names) != hidden:
        raise ValueError(f"{fn}: activation must be one name or one name per hidden layer ({hidden}), got {activation!r}.")
    for name in names:
        if name not in ACTIVATIONS:
            raise ValueError(f"{fn}: unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}.")
    return names


def mlp_forward(x: torch.Tensor, params: Mapping, activation: str | Sequence[str] = "relu"):
    """Forward pass of the MLP ``params`` (see :func:`init_mlp`): linear, activation, ..., linear.

    ``activation`` is one name from :data:`ACTIVATIONS` for every hidden layer, or one per hidden
    layer. Shapes: ``x`` (N, D_in) -> ``logits`` (N, C). Returns ``(logits, cache)``.
    """
    fn = "mlp_forward"
    depth = _mlp_depth(params, fn)
    names = _activation_names(activation, depth - 1, fn)
    x = require_float_tensor(x, f"{fn}: x")
    require_batch(x, f"{fn}: x", "D_in")
    if x.shape[1] != params["W1"].shape[0]:
        raise ValueError(f"{fn}: x has shape {shape_str(x)} but W1 has shape {shape_str(params['W1'])}: "
                         f"the network expects {params['W1'].shape[0]} input features.")
    if x.dtype != params["W1"].dtype:
        raise TypeError(f"{fn}: x has dtype {x.dtype} but the parameters have {params['W1'].dtype} "
                        f"(init_mlp makes float64 by default). Convert x, e.g. x.to({params['W1'].dtype}).")
    caches, h = [], x
    for i in range(1, depth + 1):
        h, c = linear_forward(h, params[f"W{i}"], params[f"b{i}"])
        caches.append(c)
        if i < depth:
            h, c = ACTIVATIONS[names[i - 1]][0](h)
            caches.append(c)
    return h, {"op": "mlp", "layers": caches, "depth": depth, "out_shape": tuple(h.shape)}


def mlp_backward(dlogits: torch.Tensor, cache: Mapping):
    """Backward of :func:`mlp_forward`. Shapes: ``dlogits`` (N, C) -> ``dx`` (N, D_in) and a dict
    with the gradient of every parameter (``"W1"``, ``"b1"``, ...), each the shape of its parameter.
    """
    cache = require_cache(cache, "mlp", "mlp_backward")
    grad = require_upstream(dlogits, cache, "mlp_backward", "dlogits", dtype=cache["layers"][-1]["W"].dtype)
    grads = {}
    i = cache["depth"]
    for c in reversed(cache["layers"]):
        if c["op"] == "linear":
            grad, g = linear_backward(grad, c)
            grads[f"W{i}"], grads[f"b{i}"] = g["W"], g["b"]
            i -= 1
        else:
            grad, _ = ACTIVATIONS[c["op"]][1](grad, c)
    return grad, {k: grads[k] for k in sorted(grads, key=lambda k: (int(k[1:]), k[0] != "W"))}


def mlp_loss_and_grads(x: torch.Tensor, labels: torch.Tensor, params: Mapping, *,
                       activation: str | Sequence[str] = "relu", l2: float = 0.0):
    """Softmax cross-entropy of the MLP on ``(x, labels)`` plus ``l2 * sum_l ||W_l||^2`` (weights only).

    Returns ``(loss, grads)``: the 0-dim loss and the hand-computed gradient of every parameter.
    Shapes: ``x`` (N, D_in), ``labels`` (N,) integer classes.
    """
    if not is_real_number(l2) or not math.isfinite(l2) or l2 < 0:
        raise ValueError(f"mlp_loss_and_grads: l2 must be a finite number >= 0 (the penalty strength), got {l2!r}.")
    logits, cache = mlp_forward(x, params, activation)
    loss, loss_cache = softmax_cross_entropy_forward(logits, labels)
    _, grads = mlp_backward(softmax_cross_entropy_backward(loss_cache), cache)
    if l2:
        for i in range(1, cache["depth"] + 1):
            penalty, pc = l2_penalty_forward(params[f"W{i}"], l2)
            loss = loss + penalty
            grads[f"W{i}"] = grads[f"W{i}"] + l2_penalty_backward(pc)
    return loss, grads

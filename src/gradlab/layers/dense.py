"""Neural-network layers and losses with hand-written backward passes, and a small MLP built from them.

One convention for everything in this module
--------------------------------------------
* **Batch first.** A batch of ``N`` examples with ``D`` features is a tensor of shape ``(N, D)``.
* **A layer** is a pair of functions. ``<layer>_forward(x, *params)`` returns ``(out, cache)``:
  ``cache`` holds exactly what the backward pass needs. ``<layer>_backward(dout, cache)`` takes
  ``dout`` = dL/d(out), the upstream gradient with the shape of ``out``, and returns
  ``(dx, grads)``: dL/dx with the shape of ``x``, and a dict of parameter gradients keyed like the
  parameters (``{"W": dW, "b": db}`` for :func:`linear_forward`; ``{}`` for an activation).
* **A loss** ends the graph: ``<loss>_forward(prediction, target)`` returns ``(loss, cache)``, a
  0-dim tensor averaged over the batch (over every element for MSE and BCE), and
  ``<loss>_backward(cache)`` returns dL/d(prediction). The upstream gradient of a loss is 1.
  :func:`l2_penalty_forward` follows the same pattern for a penalty on one weight tensor.
* **One dtype.** The tensors a layer, a loss or the MLP takes share one floating dtype (labels
  excepted), and so does the upstream gradient of a linear layer or of the MLP; mixing them raises a
  ``TypeError`` that names them.
* **The MLP** uses the same shape of API: :func:`mlp_forward` returns ``(logits, cache)`` and
  :func:`mlp_backward` returns ``(dx, grads)`` with one gradient per parameter, keyed like the
  parameter dict (``"W1"``, ``"b1"``, ``"W2"``, ...).

Forward functions are ordinary PyTorch code, so autograd can differentiate them too (that is how the
tests check the backward functions). Backward functions run under ``torch.no_grad()`` and return
plain tensors. Caches are dicts; pass each one, unchanged, to the backward of the layer that made it.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch

from .._printed import format_shape
from .._validate import (is_integer, is_real_number, positive_number, require_float_tensor,
                        require_same_dtype, require_same_shape, require_tensor, shape_str)

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
    "layer_norm_forward", "layer_norm_backward", "batch_norm_forward", "batch_norm_backward",
    "embedding_forward", "embedding_backward", "attention_forward", "attention_backward",
    "softmax_backward",
]


# --------------------------------------------------------------------------------------------------
# argument checks


def _require_batch(t: torch.Tensor, what: str, features: str = "D") -> None:
    if t.dim() != 2:
        raise ValueError(
            f"{what} must be a batch of shape (N, {features}) (batch first), got shape {shape_str(t)}. "
            f"For a single example of shape (D,), add the batch dimension with .unsqueeze(0)."
        )
    if t.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch (shape {shape_str(t)}): pass at least one example.")


def _require_cache(cache, op: str, fn: str) -> Mapping:
    if not isinstance(cache, Mapping) or "op" not in cache:
        raise TypeError(f"{fn}: cache must be the dict returned by {op}_forward, got {type(cache).__name__}.")
    if cache["op"] != op:
        raise ValueError(
            f"{fn}: this cache was made by {cache['op']}_forward, not {op}_forward. "
            f"Pass each layer's cache to the backward function of the same layer."
        )
    return cache


def _require_upstream(dout, cache: Mapping, fn: str, name: str = "dout",
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


# --------------------------------------------------------------------------------------------------
# affine layer


def linear_forward(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor):
    """Affine layer ``out = x @ W + b``.

    Shapes: ``x`` (N, D_in), ``W`` (D_in, D_out), ``b`` (D_out,) -> ``out`` (N, D_out).
    The cache keeps ``x`` and ``W``.
    """
    fn = "linear_forward"
    x, W, b = require_float_tensor(x, f"{fn}: x"), require_float_tensor(W, f"{fn}: W"), require_float_tensor(b, f"{fn}: b")
    _require_batch(x, f"{fn}: x", "D_in")
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
    return out, {"op": "linear", "x": x, "W": W, "out_shape": tuple(out.shape)}


def linear_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`linear_forward`: ``dx = dout @ W.T``, ``dW = x.T @ dout``, ``db = dout.sum(0)``.

    Shapes: ``dout`` (N, D_out) -> ``dx`` (N, D_in), ``{"W": (D_in, D_out), "b": (D_out,)}``.
    ``b`` was added to every row, so its gradient sums over the batch.
    """
    cache = _require_cache(cache, "linear", "linear_backward")
    dout = _require_upstream(dout, cache, "linear_backward", dtype=cache["W"].dtype)
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
    return out, {"op": "relu", "mask": ~(x <= 0).detach(), "out_shape": tuple(out.shape)}


def relu_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`relu_forward`: ``dx = dout`` where ``x > 0``, else 0.

    At ``x == 0`` exactly, ReLU has no derivative; like PyTorch, we use the subgradient 0.
    The gradient is selected (``torch.where``), not multiplied by a 0/1 mask, so an infinite
    ``dout`` gives 0 where ``x <= 0`` (not NaN), as in PyTorch. Returns ``(dx, {})``.
    """
    cache = _require_cache(cache, "relu", "relu_backward")
    dout = _require_upstream(dout, cache, "relu_backward")
    with torch.no_grad():
        return torch.where(cache["mask"], dout, torch.zeros_like(dout)), {}


def sigmoid_forward(x: torch.Tensor):
    """``out = 1 / (1 + exp(-x))`` element-wise; any shape. The cache keeps ``out``."""
    x = require_float_tensor(x, "sigmoid_forward: x")
    out = torch.sigmoid(x)  # stable for large |x|: never exp() of a large positive number
    return out, {"op": "sigmoid", "out": out.detach(), "out_shape": tuple(out.shape)}


def sigmoid_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`sigmoid_forward`: ``dx = dout * out * (1 - out)``. Returns ``(dx, {})``."""
    cache = _require_cache(cache, "sigmoid", "sigmoid_backward")
    dout = _require_upstream(dout, cache, "sigmoid_backward")
    with torch.no_grad():
        s = cache["out"]
        return dout * s * (1 - s), {}


def tanh_forward(x: torch.Tensor):
    """``out = tanh(x)`` element-wise; any shape. The cache keeps ``out``."""
    x = require_float_tensor(x, "tanh_forward: x")
    out = torch.tanh(x)
    return out, {"op": "tanh", "out": out.detach(), "out_shape": tuple(out.shape)}


def tanh_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`tanh_forward`: ``dx = dout * (1 - out**2)``. Returns ``(dx, {})``."""
    cache = _require_cache(cache, "tanh", "tanh_backward")
    dout = _require_upstream(dout, cache, "tanh_backward")
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
    return {"op": op, "out_shape": (), **saved}


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
    cache = _require_cache(cache, "mse", "mse_backward")
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
    cache = _require_cache(cache, "bce_with_logits", "bce_with_logits_backward")
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
    _require_batch(logits, f"{fn}: logits", "C")
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
    cache = _require_cache(cache, "softmax_cross_entropy", "softmax_cross_entropy_backward")
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
    cache = _require_cache(cache, "l2_penalty", "l2_penalty_backward")
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
    _require_batch(x, f"{fn}: x", "D_in")
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
    cache = _require_cache(cache, "mlp", "mlp_backward")
    grad = _require_upstream(dlogits, cache, "mlp_backward", "dlogits", dtype=cache["layers"][-1]["W"].dtype)
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


# --------------------------------------------------------------------------------------------------
# normalisation, embeddings and attention (the layers of a transformer block)


def _require_vector(t, n: int, what: str, fn: str, dtype: torch.dtype) -> torch.Tensor:
    t = require_float_tensor(t, f"{fn}: {what}")
    if tuple(t.shape) != (n,):
        raise ValueError(f"{fn}: {what} must have shape ({n},), one entry per feature, got {shape_str(t)}.")
    if t.dtype != dtype:
        raise TypeError(f"{fn}: {what} has dtype {t.dtype} but x has {dtype}; convert one, e.g. .to(x.dtype).")
    return t


def _require_eps(eps, fn: str) -> float:
    checked = positive_number(eps)
    if checked is None:
        raise ValueError(f"{fn}: eps must be a small positive number such as 1e-5, got {eps!r}.")
    return checked


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


def layer_norm_forward(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5):
    """Layer normalisation: each row of ``x`` normalised over its features, then scaled and shifted.

    ``out[i] = (x[i] - mean(x[i])) / sqrt(var(x[i]) + eps) * gamma + beta`` (biased variance), as
    ``F.layer_norm(x, (D,), gamma, beta, eps)``. Shapes: ``x`` (N, D), ``gamma``/``beta`` (D,).
    The cache keeps the normalised ``xhat``, ``1/std`` per row and ``gamma``.
    """
    fn = "layer_norm_forward"
    x = require_float_tensor(x, f"{fn}: x")
    _require_batch(x, f"{fn}: x")
    eps = _require_eps(eps, fn)
    gamma = _require_vector(gamma, x.shape[1], "gamma", fn, x.dtype)
    beta = _require_vector(beta, x.shape[1], "beta", fn, x.dtype)
    xhat, rstd, _ = _normalise(x, 1, eps)
    out = xhat * gamma + beta
    return out, {"op": "layer_norm", "xhat": xhat.detach(), "rstd": rstd.detach(),
                 "gamma": gamma.detach(), "out_shape": tuple(out.shape)}


def _norm_layer_backward(dout: torch.Tensor, cache: Mapping, op: str, dim: int):
    # Layer norm and batch norm share one backward; they differ in the dim they normalise over.
    cache = _require_cache(cache, op, f"{op}_backward")
    dout = _require_upstream(dout, cache, f"{op}_backward", dtype=cache["xhat"].dtype)
    with torch.no_grad():
        xhat = cache["xhat"]
        dx = _normalise_backward(dout * cache["gamma"], xhat, cache["rstd"], dim)
        return dx, {"gamma": (dout * xhat).sum(0), "beta": dout.sum(0)}


def layer_norm_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`layer_norm_forward` -> ``(dx, {"gamma": (D,), "beta": (D,)})``.

    ``dx = rstd * (g - mean_j g - xhat * mean_j(g * xhat))`` per row, with ``g = dout * gamma``.
    """
    return _norm_layer_backward(dout, cache, "layer_norm", 1)


def batch_norm_forward(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5,
                       running_mean: torch.Tensor | None = None, running_var: torch.Tensor | None = None,
                       momentum: float = 0.1):
    """Batch normalisation in training mode: each feature normalised over the batch.

    As ``F.batch_norm(x, running_mean, running_var, gamma, beta, training=True, momentum, eps)``:
    the output uses the batch's mean and biased variance; ``running_mean``/``running_var``, if given,
    are updated in place (with the unbiased variance, like PyTorch) and carry no gradient.
    Shapes: ``x`` (N, D) with N >= 2, ``gamma``/``beta``/running statistics (D,).
    """
    fn = "batch_norm_forward"
    x = require_float_tensor(x, f"{fn}: x")
    _require_batch(x, f"{fn}: x")
    if x.shape[0] < 2:
        raise ValueError(f"{fn}: x has a batch of 1 (shape {shape_str(x)}); training-mode batch norm needs "
                         f"at least 2 rows per feature to estimate a variance. Use a larger batch or layer norm.")
    eps = _require_eps(eps, fn)
    if not is_real_number(momentum) or not 0 <= momentum <= 1:
        raise ValueError(f"{fn}: momentum must be a number in [0, 1] (the weight of the new batch in the "
                         f"running statistics, 0.1 by default), got {momentum!r}. PyTorch's momentum=None "
                         f"(a cumulative average) is not supported.")
    n, d = x.shape
    gamma = _require_vector(gamma, d, "gamma", fn, x.dtype)
    beta = _require_vector(beta, d, "beta", fn, x.dtype)
    xhat, rstd, var = _normalise(x, 0, eps)
    out = xhat * gamma + beta
    with torch.no_grad():
        for name, stat, value in (("running_mean", running_mean, x.mean(0)),
                                  ("running_var", running_var, var.reshape(-1) * n / (n - 1))):
            if stat is not None:
                _require_vector(stat, d, name, fn, x.dtype)
                stat.mul_(1 - momentum).add_(momentum * value.detach())
    return out, {"op": "batch_norm", "xhat": xhat.detach(), "rstd": rstd.detach(),
                 "gamma": gamma.detach(), "out_shape": tuple(out.shape)}


def batch_norm_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`batch_norm_forward` -> ``(dx, {"gamma": (D,), "beta": (D,)})``.

    The layer-norm formula with the roles of rows and columns swapped: means over the batch.
    """
    return _norm_layer_backward(dout, cache, "batch_norm", 0)


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
    return out, {"op": "embedding", "ids": ids, "table_shape": tuple(W.shape), "dtype": W.dtype,
                 "out_shape": tuple(out.shape)}


def embedding_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`embedding_forward` -> ``(None, {"W": (V, D)})``: a scatter-add.

    Row ``t`` of ``dW`` is the sum of the upstream rows of every position that looked up token ``t``,
    so a token used twice accumulates twice; rows never looked up stay zero. Token ids have no
    gradient, hence ``None``.
    """
    cache = _require_cache(cache, "embedding", "embedding_backward")
    dout = _require_upstream(dout, cache, "embedding_backward", dtype=cache["dtype"])
    with torch.no_grad():
        v, d = cache["table_shape"]
        dW = torch.zeros(v, d, dtype=dout.dtype, device=dout.device)
        dW.index_add_(0, cache["ids"].reshape(-1), dout.reshape(-1, d))
        return None, {"W": dW}


def _attention_mask(mask, causal: bool, t: int, s: int, fn: str, device) -> torch.Tensor | None:
    keep = None
    if mask is not None:
        mask = require_tensor(mask, f"{fn}: mask")
        if mask.dtype != torch.bool:
            raise TypeError(f"{fn}: mask must be a boolean tensor (True = may attend), got dtype {mask.dtype}; "
                            f"for a 0/1 tensor use mask.bool().")
        if tuple(mask.shape) != (t, s):
            raise ValueError(f"{fn}: mask must have shape ({t}, {s}) (queries x keys), got {shape_str(mask)}.")
        keep = mask
    if causal:
        tri = torch.ones(t, s, dtype=torch.bool, device=device).tril()
        keep = tri if keep is None else keep & tri
    if keep is not None and not bool(keep.any(-1).all()):
        row = int((~keep.any(-1)).nonzero()[0, 0])
        raise ValueError(f"{fn}: the mask hides every key from query {row}; each query must see at least "
                         f"one key (its softmax would be 0/0).")
    return keep


def attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
                      mask: torch.Tensor | None = None, save: str = "probs"):
    """Single-head scaled dot-product attention: ``softmax(q @ k.T / sqrt(d) [masked]) @ v``.

    As ``F.scaled_dot_product_attention(q, k, v, attn_mask=mask)`` (or ``is_causal=causal``) for one
    head. PyTorch refuses a mask together with ``is_causal=True``; here both may be given, and a
    query then sees the keys that the mask allows *and* that are not in its future.
    Shapes: ``q`` (T, d), ``k`` (S, d), ``v`` (S, d_v) -> ``out`` (T, d_v). ``mask`` (T, S) boolean,
    True where a query may attend to a key; ``causal=True`` lets query i see keys 0..i.
    ``save="probs"`` keeps the (T, S) probabilities for backward; ``save="logsumexp"`` keeps only
    each row's log-normaliser (T, 1) and rebuilds the probabilities in backward (the recompute idea
    of memory-efficient attention).
    """
    fn = "attention_forward"
    q, k, v = (require_float_tensor(t, f"{fn}: {n}") for t, n in ((q, "q"), (k, "k"), (v, "v")))
    for t, n, dims in ((q, "q", "(T, d)"), (k, "k", "(S, d)"), (v, "v", "(S, d_v)")):
        if t.dim() != 2:
            raise ValueError(f"{fn}: {n} must have shape {dims} (one head, one sequence), got {shape_str(t)}.")
    if k.shape[1] != q.shape[1] or v.shape[0] != k.shape[0]:
        raise ValueError(f"{fn}: q {shape_str(q)}, k {shape_str(k)} and v {shape_str(v)} do not fit: q and k "
                         f"need the same width d, k and v the same number of keys S.")
    require_same_dtype(fn, ("q", q), ("k", k), ("v", v))
    if save not in ("probs", "logsumexp"):
        raise ValueError(f"{fn}: save must be 'probs' or 'logsumexp', got {save!r}.")
    scale = 1.0 / math.sqrt(q.shape[1])
    keep = _attention_mask(mask, causal, q.shape[0], k.shape[0], fn, q.device)
    scores = (q @ k.T) * scale
    if keep is not None:
        scores = scores.masked_fill(~keep, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1, keepdim=True)       # max-shifted inside: no overflow
    probs = torch.exp(scores - lse)
    out = probs @ v
    cache = {"op": "attention", "q": q.detach(), "k": k.detach(), "v": v.detach(), "scale": scale,
             "keep": keep, "out_shape": tuple(out.shape)}
    cache["probs" if save == "probs" else "lse"] = (probs if save == "probs" else lse).detach()
    return out, cache


def softmax_backward(dp: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The row-softmax VJP: ``dz = p * (dp - sum_j(dp * p))`` along the last dimension."""
    return p * (dp - (dp * p).sum(-1, keepdim=True))


def attention_backward(dout: torch.Tensor, cache: Mapping):
    """Backward of :func:`attention_forward` -> ``(dq, dk, dv)``, shapes (T, d), (S, d), (S, d_v).

    Attention has three inputs and no parameters, so it returns one gradient per input.
    ``dv = P.T @ dout``; ``dP = dout @ v.T``; ``dS = softmax_backward(dP, P) * scale``;
    ``dq = dS @ k``; ``dk = dS.T @ q``. A masked position has ``P = 0``, so its ``dS`` is exactly 0.
    """
    cache = _require_cache(cache, "attention", "attention_backward")
    dout = _require_upstream(dout, cache, "attention_backward", dtype=cache["q"].dtype)
    with torch.no_grad():
        q, k, v, scale = cache["q"], cache["k"], cache["v"], cache["scale"]
        if "probs" in cache:
            p = cache["probs"]
        else:   # rebuild the probabilities from the saved log-normalisers
            scores = (q @ k.T) * scale
            if cache["keep"] is not None:
                scores = scores.masked_fill(~cache["keep"], float("-inf"))
            p = torch.exp(scores - cache["lse"])
        ds = softmax_backward(dout @ v.T, p) * scale
        return ds @ k, ds.T @ q, p.T @ dout

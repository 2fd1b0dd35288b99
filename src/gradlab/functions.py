"""Reference ``torch.autograd.Function``s with hand-written backward passes.

Every class is used through ``apply`` (``Mul.apply(a, b)``) and follows the same rules:

- ``forward`` computes with torch operations only (no NumPy, no ``.item()``), so it runs on any
  device and dtype torch supports;
- ``backward`` returns one vector-Jacobian product per input: the upstream gradient
  ``grad_output`` times the local derivative, never written in place, ``None`` for an input that
  needs no gradient (``ctx.needs_input_grad``) or that is not a tensor (a ``dim``);
- where the operation broadcasts, each gradient is summed back to its input's shape
  (``Tensor.sum_to_size``);
- ``backward`` is itself built from differentiable torch operations on saved tensors, so every
  Function supports double backward (``torch.autograd.gradgradcheck`` passes);
- at kinks they follow torch: ``ReLU`` has derivative 0 at 0, and ``Maximum`` splits the gradient
  in halves between tied inputs, like ``torch.relu`` and ``torch.maximum``;
- where a gradient is routed (ReLU, Maximum), backward *selects* with ``torch.where`` rather than
  multiplying by a 0/1 mask, so an infinite upstream gradient gives 0 where the route is closed
  (not ``inf * 0 = NaN``) and a NaN input passes the gradient through, exactly as PyTorch does.

They use the ``setup_context`` style (``forward`` without ``ctx``), which also makes them usable
inside ``torch.func`` transforms such as ``torch.func.grad``.
"""
from __future__ import annotations

import torch

from ._validate import is_integer, require_float_tensor, require_same_dtype, shape_str

__all__ = ["Add", "Mul", "Exp", "ReLU", "Sigmoid", "Maximum", "MatMul", "Affine", "LogSumExp"]


def _broadcastable(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str, op: str) -> None:
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(
            f"{op}: {a_name} has shape {shape_str(a)} and {b_name} has shape {shape_str(b)}, which do not "
            f"broadcast (trailing dimensions must be equal or 1). Reshape one of them, e.g. with "
            f"unsqueeze(), so that they line up."
        ) from None


class Add(torch.autograd.Function):
    """``a + b`` with broadcasting. Shapes: ``a``, ``b`` broadcastable; output: the broadcast shape.

    Backward: the upstream gradient passes unchanged to both inputs, summed back to each shape.
    Saves nothing but the two input shapes.
    """

    @staticmethod
    def forward(a, b):
        require_float_tensor(a, "Add: a")
        require_float_tensor(b, "Add: b")
        _broadcastable(a, "a", b, "b", "Add")
        return a + b

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, b = inputs
        ctx.shapes = (a.shape, b.shape)

    @staticmethod
    def backward(ctx, grad_output):
        a_shape, b_shape = ctx.shapes
        grad_a = grad_output.sum_to_size(a_shape) if ctx.needs_input_grad[0] else None
        grad_b = grad_output.sum_to_size(b_shape) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Mul(torch.autograd.Function):
    """``a * b`` elementwise, with broadcasting. Output: the broadcast shape.

    Backward: ``grad_a = grad_output * b`` and ``grad_b = grad_output * a``, each summed back to its
    input's shape. Saves both inputs.
    """

    @staticmethod
    def forward(a, b):
        require_float_tensor(a, "Mul: a")
        require_float_tensor(b, "Mul: b")
        _broadcastable(a, "a", b, "b", "Mul")
        return a * b

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        grad_a = (grad_output * b).sum_to_size(a.shape) if ctx.needs_input_grad[0] else None
        grad_b = (grad_output * a).sum_to_size(b.shape) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Exp(torch.autograd.Function):
    """``exp(x)`` elementwise; any shape. Backward: ``grad_output * exp(x)``, using the saved output."""

    @staticmethod
    def forward(x):
        require_float_tensor(x, "Exp: x")
        return torch.exp(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * y


class ReLU(torch.autograd.Function):
    """``max(x, 0)`` elementwise; any shape. Backward: 0 where ``x <= 0``, else ``grad_output``.

    At ``x = 0`` the derivative is 0, as for ``torch.relu``; a NaN input (NaN output) passes the
    gradient through, as in PyTorch. Saves the output (``y <= 0`` exactly where ``x <= 0``).
    """

    @staticmethod
    def forward(x):
        require_float_tensor(x, "ReLU: x")
        return torch.relu(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return torch.where(y <= 0, torch.zeros_like(grad_output), grad_output)


class Sigmoid(torch.autograd.Function):
    """``1 / (1 + exp(-x))`` elementwise; any shape. Backward: ``grad_output * y * (1 - y)``.

    Saves its output ``y``, not its input: the derivative is a function of ``y`` alone, so backward
    needs no second exponential.
    """

    @staticmethod
    def forward(x):
        require_float_tensor(x, "Sigmoid: x")
        return torch.sigmoid(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * y * (1 - y)


class Maximum(torch.autograd.Function):
    """``torch.maximum(a, b)`` elementwise, with broadcasting. Output: the broadcast shape.

    Backward: the gradient goes to the larger input; where ``a == b`` it is split in halves, as
    ``torch.maximum`` does (and where one is NaN, both receive it, as in PyTorch). Saves both inputs.
    """

    @staticmethod
    def forward(a, b):
        require_float_tensor(a, "Maximum: a")
        require_float_tensor(b, "Maximum: b")
        _broadcastable(a, "a", b, "b", "Maximum")
        return torch.maximum(a, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        routed = torch.where(a == b, grad_output / 2, grad_output)   # a tie splits the gradient
        zero = torch.zeros_like(routed)
        grad_a = torch.where(a < b, zero, routed).sum_to_size(a.shape) if ctx.needs_input_grad[0] else None
        grad_b = torch.where(a > b, zero, routed).sum_to_size(b.shape) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class MatMul(torch.autograd.Function):
    """``a @ b`` for ``a`` of shape ``(..., n, k)`` and ``b`` of shape ``(..., k, m)``.

    Output ``(..., n, m)``; the leading (batch) dimensions broadcast as in ``torch.matmul``.
    Backward: ``grad_a = grad_output @ b^T`` and ``grad_b = a^T @ grad_output`` (transposing the last
    two dimensions), each summed back to its input's shape. Both inputs need at least 2 dimensions:
    reshape a vector ``v`` to a row ``v[None, :]`` or a column ``v[:, None]``.
    """

    @staticmethod
    def forward(a, b):
        require_float_tensor(a, "MatMul: a")
        require_float_tensor(b, "MatMul: b")
        for t, name, form in ((a, "a", "(n, k)"), (b, "b", "(k, m)")):
            if t.dim() < 2:
                raise ValueError(
                    f"MatMul: {name} has shape {shape_str(t)}, but both inputs need at least 2 dimensions "
                    f"({name} as {form}). Make a vector a row with v[None, :] or a column with v[:, None]."
                )
        require_same_dtype("MatMul", ("a", a), ("b", b))   # @ does not promote dtypes, unlike + and *
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(
                f"MatMul: a has shape {shape_str(a)} and b has shape {shape_str(b)}; the last dimension of a "
                f"({a.shape[-1]}) must equal the second-to-last of b ({b.shape[-2]}). Transpose or reshape one of them."
            )
        try:
            torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except RuntimeError:
            raise ValueError(
                f"MatMul: a has shape {shape_str(a)} and b has shape {shape_str(b)}; their batch dimensions "
                f"(all but the last two) do not broadcast. Make them equal, or 1 where one side is shared."
            ) from None
        return a @ b

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        grad_a = (grad_output @ b.mT).sum_to_size(a.shape) if ctx.needs_input_grad[0] else None
        grad_b = (a.mT @ grad_output).sum_to_size(b.shape) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Affine(torch.autograd.Function):
    """The affine layer ``x @ W + b``: ``x`` ``(N, d_in)``, ``W`` ``(d_in, d_out)``, ``b`` ``(d_out,)``.

    Output ``(N, d_out)``; ``b`` is broadcast over the batch of ``N`` rows. Backward:
    ``dx = dY @ W^T`` ``(N, d_in)``, ``dW = x^T @ dY`` ``(d_in, d_out)``, ``db = dY.sum(0)``
    ``(d_out,)``: the bias was added to every row, so its gradient sums over them.
    """

    @staticmethod
    def forward(x, W, b):
        require_float_tensor(x, "Affine: x")
        require_float_tensor(W, "Affine: W")
        require_float_tensor(b, "Affine: b")
        if x.dim() != 2 or W.dim() != 2 or b.dim() != 1:
            raise ValueError(
                f"Affine: expected x of shape (N, d_in), W of shape (d_in, d_out) and b of shape (d_out,), "
                f"got x {shape_str(x)}, W {shape_str(W)}, b {shape_str(b)}. Reshape a single example to "
                f"one row with x[None, :]."
            )
        if x.shape[1] != W.shape[0] or W.shape[1] != b.shape[0]:
            raise ValueError(
                f"Affine: shapes do not fit: x {shape_str(x)}, W {shape_str(W)}, b {shape_str(b)}; need "
                f"x.shape[1] == W.shape[0] (d_in) and W.shape[1] == b.shape[0] (d_out)."
            )
        require_same_dtype("Affine", ("x", x), ("W", W), ("b", b))
        return x @ W + b

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, b = inputs
        ctx.save_for_backward(x, W)

    @staticmethod
    def backward(ctx, grad_output):
        x, W = ctx.saved_tensors
        grad_x = grad_output @ W.T if ctx.needs_input_grad[0] else None
        grad_W = x.T @ grad_output if ctx.needs_input_grad[1] else None
        grad_b = grad_output.sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_W, grad_b


class LogSumExp(torch.autograd.Function):
    """``log(sum(exp(x), dim))`` computed stably: ``LogSumExp.apply(x, dim)``; ``dim`` removed.

    Forward shifts by the maximum ``m`` along ``dim``, ``m + log(sum(exp(x - m)))``, so no
    exponential overflows (entries of ``-inf``, e.g. masked logits, are allowed; an empty ``dim``
    gives ``-inf``, like ``torch.logsumexp``). Backward:
    ``grad_output * softmax(x, dim)``, computed as ``exp(x - out)`` from the saved input and output.
    ``dim`` is an int, which gets no gradient (``None``).
    """

    @staticmethod
    def forward(x, dim):
        require_float_tensor(x, "LogSumExp: x")
        if not is_integer(dim):
            raise TypeError(f"LogSumExp: dim must be an int (the dimension to reduce), got {type(dim).__name__}.")
        dim = int(dim)   # a NumPy integer is an int too
        if x.dim() == 0 or not -x.dim() <= dim < x.dim():
            raise ValueError(
                f"LogSumExp: dim={dim} is out of range for x of shape {shape_str(x)}; use a dimension "
                f"between {-max(x.dim(), 1)} and {max(x.dim(), 1) - 1} (reshape a scalar to shape (1,) first)."
            )
        if x.shape[dim] == 0:   # the log of an empty sum: -inf, as torch.logsumexp gives
            m = x.new_zeros(x.shape[:dim % x.dim()] + (1,) + x.shape[dim % x.dim() + 1:])
        else:
            m = x.amax(dim=dim, keepdim=True)
            m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))   # all -inf (or an inf): shift by 0
        return (m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))).squeeze(dim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, dim = inputs
        ctx.dim = int(dim)
        ctx.save_for_backward(x, output)

    @staticmethod
    def backward(ctx, grad_output):
        x, out = ctx.saved_tensors
        softmax = torch.exp(x - out.unsqueeze(ctx.dim))
        return grad_output.unsqueeze(ctx.dim) * softmax, None

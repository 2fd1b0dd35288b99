"""Chapter 09's engine: :class:`Tensor`, a ``torch.Tensor`` of floats with its own reverse mode.

The same design as chapter 08's ``Value`` (see :mod:`gradlab.engine`), with tensors: each rule
returns gradients of its inputs' shapes, broadcasting is undone by :func:`unbroadcast`, and
:func:`cross_entropy` is one fused node. Every rule runs the kernel PyTorch's own backward runs,
so the results agree with autograd at the edges too (NaN, infinities, ReLU's kink).

Saved data and in-place changes: a rule keeps references to the tensors it needs (an input's
``data`` or the output). A node records their version counters (``torch.Tensor._version``, the
counter PyTorch bumps on every in-place change, chapter 02), and ``backward()`` checks them all
before it changes any gradient: data changed in place after the forward pass would give a
silently wrong gradient, so it is refused, as PyTorch refuses it.
"""
from __future__ import annotations

import math
from numbers import Real

import torch

from .._printed import format_shape
from .value import topological_order

__all__ = ["Tensor", "unbroadcast", "cross_entropy"]

#: PyTorch's own ReLU backward kernel: the gradient where ``out > 0`` (or NaN), else exactly 0.
_threshold_backward = torch.ops.aten.threshold_backward.default


def _shape(shape) -> str:
    return format_shape(shape)


def unbroadcast(g: torch.Tensor, shape) -> torch.Tensor:
    """Sum ``g`` (the gradient of a broadcast result) back to ``shape``, the input's shape.

    Broadcasting copies the input along the dimensions it lacks (prepended) and along those where it
    has size 1; in backward each copy's gradient flows to the same entry, so they add up.
    """
    if g.shape == shape:
        return g
    lead = g.dim() - len(shape)
    if lead:
        g = g.sum(tuple(range(lead)))
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if dims:
        g = g.sum(dims, keepdim=True)
    return g


def _check_float(data: torch.Tensor, what: str) -> torch.Tensor:
    if not data.is_floating_point():
        raise TypeError(f"{what} has dtype {data.dtype}, but gradients need floating-point data: "
                        f"convert it with .float() or .double().")
    return data


def _node(data: torch.Tensor, inputs: tuple, backward, op: str = "", saved: tuple = ()) -> "Tensor":
    """A result node, built without Tensor.__init__'s checks (the hot path of every operation).

    ``saved`` lists the tensors ``backward`` reads; their version counters are recorded now.
    """
    out = object.__new__(Tensor)
    out.data, out.grad = data, None
    out.requires_grad = False
    for inp in inputs:
        if inp.requires_grad:
            out.requires_grad = True
            break
    if out.requires_grad:
        out._inputs, out._backward = inputs, backward
        out._saved = (op, saved, [t._version for t in saved]) if saved else None
    else:
        out._inputs, out._backward, out._saved = (), None, None
    return out


def _check_saved(order: list) -> None:
    """Refuse a graph whose saved data was changed in place after the forward pass."""
    for node in order:
        if node._saved is None:
            continue
        op, tensors, versions = node._saved
        for t, version in zip(tensors, versions):
            if t._version != version:
                raise RuntimeError(
                    f"backward(): a tensor of shape {_shape(t.shape)} that the rule of {op} saved in the "
                    f"forward pass (an input's data or its result) was changed in place since (version "
                    f"{version} -> {t._version}); its gradient would be silently wrong, so nothing was "
                    f"computed. Run the forward pass again after changing data, or change a copy "
                    f"(x.data = x.data * 2 rather than x.data.mul_(2)).")


def _broadcast_error(op: str, a: torch.Tensor, b) -> ValueError:
    bs = _shape(b.shape) if isinstance(b, torch.Tensor) else "()"
    return ValueError(f"{op}: shapes {_shape(a.shape)} and {bs} do not broadcast "
                      f"(right-aligned sizes must match or be 1)")


class Tensor:
    """A tensor node: ``data`` (floating-point ``torch.Tensor``), ``grad`` (``None`` or the shape of data).

    ``Tensor(data, requires_grad=True)``: ``data`` is a ``torch.Tensor`` (detached; its dtype must
    be floating point) or a number / nested list (converted to the default float dtype). Inputs
    such as a batch of data that need no gradient can say ``requires_grad=False``.
    """

    __slots__ = ("data", "grad", "requires_grad", "_inputs", "_backward", "_saved")

    def __init__(self, data, requires_grad: bool = True):
        if isinstance(data, Tensor):
            data = data.data
        if isinstance(data, torch.Tensor):
            data = _check_float(data, "Tensor data").detach()
        else:
            data = torch.tensor(data, dtype=torch.get_default_dtype())
        self.data, self.grad = data, None
        self.requires_grad = bool(requires_grad)
        self._inputs, self._backward, self._saved = (), None, None

    def __repr__(self) -> str:
        return f"Tensor(shape={_shape(self.data.shape)}, dtype={self.data.dtype})"

    @property
    def shape(self) -> torch.Size:
        return self.data.shape

    def _other(self, other, op: str):
        """``other`` as a Tensor of the same dtype; a Python number becomes a constant."""
        if isinstance(other, Tensor):
            if other.data.dtype != self.data.dtype:
                raise TypeError(f"{op}: dtypes {self.data.dtype} and {other.data.dtype} differ; "
                                f"convert one (e.g. .double()) so both match.")
            return other
        if isinstance(other, torch.Tensor):
            raise TypeError(f"{op}: expected a gradlab.engine.Tensor or a number, got a torch.Tensor; "
                            f"wrap it first: Tensor(x, requires_grad=False).")
        if isinstance(other, bool) or not isinstance(other, Real):
            raise TypeError(f"{op}: expected a Tensor or a number, got {type(other).__name__}.")
        return Tensor(torch.tensor(other, dtype=self.data.dtype), requires_grad=False)

    # -- elementwise with broadcasting ----------------------------------------------------------
    def __add__(self, other):
        other = self._other(other, "+")
        a, b = self.data, other.data
        try:
            out = a + b
        except RuntimeError:
            raise _broadcast_error("+", a, b) from None
        ra, rb = self.requires_grad, other.requires_grad
        return _node(out, (self, other), lambda g: (unbroadcast(g, a.shape) if ra else None,
                                                    unbroadcast(g, b.shape) if rb else None))

    def __mul__(self, other):
        other = self._other(other, "*")
        a, b = self.data, other.data
        try:
            out = a * b
        except RuntimeError:
            raise _broadcast_error("*", a, b) from None
        ra, rb = self.requires_grad, other.requires_grad
        return _node(out, (self, other), lambda g: (
            unbroadcast(g * b, a.shape) if ra else None,
            unbroadcast(g * a, b.shape) if rb else None), "*", (a, b))

    def __sub__(self, other):
        other = self._other(other, "-")
        a, b = self.data, other.data
        try:
            out = a - b
        except RuntimeError:
            raise _broadcast_error("-", a, b) from None
        ra, rb = self.requires_grad, other.requires_grad
        return _node(out, (self, other), lambda g: (unbroadcast(g, a.shape) if ra else None,
                                                    unbroadcast(-g, b.shape) if rb else None))

    def __truediv__(self, other):
        other = self._other(other, "/")
        a, b = self.data, other.data
        try:
            out = a / b
        except RuntimeError:
            raise _broadcast_error("/", a, b) from None
        ra, rb = self.requires_grad, other.requires_grad
        # PyTorch's rules: d/da = g / b, d/db = -g * ((a / b) / b)
        return _node(out, (self, other), lambda g: (
            unbroadcast(g / b, a.shape) if ra else None,
            unbroadcast(-g * (out / b), b.shape) if rb else None), "/", (b, out))

    def __neg__(self):
        return _node(-self.data, (self,), lambda g: (-g,))

    def __radd__(self, other):
        return self._other(other, "+") + self

    def __rmul__(self, other):
        return self._other(other, "*") * self

    def __rsub__(self, other):
        return self._other(other, "-") - self

    def __rtruediv__(self, other):
        return self._other(other, "/") / self

    def __pow__(self, p):
        if isinstance(p, bool) or not isinstance(p, Real):
            raise TypeError(f"Tensor ** p needs a number p (a constant exponent), got {type(p).__name__}.")
        a = self.data
        if p == 2:
            return _node(a * a, (self,), lambda g: (g * (2.0 * a),), "** 2", (a,))
        if p == 0:  # a ** 0 is constant: gradient 0 everywhere, also at a = 0 (as PyTorch's)
            return _node(torch.ones_like(a), (self,), lambda g: (torch.zeros_like(a),))
        return _node(a ** p, (self,), lambda g: (g * (p * a ** (p - 1)),), f"** {p}", (a,))

    def exp(self):
        out = self.data.exp()
        return _node(out, (self,), lambda g: (g * out,), "exp", (out,))

    def log(self):
        a = self.data
        return _node(a.log(), (self,), lambda g: (g / a,), "log", (a,))

    def tanh(self):
        out = self.data.tanh()
        return _node(out, (self,), lambda g: (g * (1.0 - out * out),), "tanh", (out,))

    def relu(self):
        out = self.data.relu()
        # The gradient is selected, not multiplied by a 0/1 mask: it passes where out > 0 and where
        # out is NaN (slope 1, as PyTorch), and is exactly 0 elsewhere even if g is inf or NaN.
        # threshold_backward is the kernel of PyTorch's own ReLU backward; it is also faster
        # than a comparison and a product.
        return _node(out, (self,), lambda g: (_threshold_backward(g, out, 0),), "relu", (out,))

    # -- matrix product ----------------------------------------------------------------------
    def __matmul__(self, other):
        if not isinstance(other, Tensor) and not isinstance(other, torch.Tensor):
            raise TypeError(f"@: expected a Tensor, got {type(other).__name__}.")
        other = self._other(other, "@")
        a, b = self.data, other.data
        if a.dim() == 0 or b.dim() == 0:
            raise ValueError("@: both operands need at least one dimension, got shapes "
                             f"{_shape(a.shape)} and {_shape(b.shape)}.")
        try:
            out = a @ b
        except RuntimeError:
            raise ValueError(f"@: shapes {_shape(a.shape)} and {_shape(b.shape)} do not match: the "
                             f"last size of the left operand must equal the first matrix size of "
                             f"the right one.") from None
        ra, rb = self.requires_grad, other.requires_grad
        if a.dim() == 2 and b.dim() == 2:  # the common case, without reshapes
            return _node(out, (self, other), lambda g: (g @ b.T if ra else None,
                                                        a.T @ g if rb else None), "@", (a, b))
        return _node(out, (self, other), lambda g: _matmul_backward(g, a, b, ra, rb), "@", (a, b))

    # -- reductions --------------------------------------------------------------------------
    def sum(self, axis=None, keepdims: bool = False):
        a = self.data
        if axis is None:   # every dimension; keepdims=True keeps each as size 1, like torch's
            shape = a.shape
            out = a.sum(tuple(range(a.dim())), keepdim=True) if keepdims and a.dim() else a.sum()
            return _node(out, (self,), lambda g: (g.expand(shape),))
        dims = _dims(axis, a.dim())
        out = a.sum(dims, keepdim=keepdims)
        return _node(out, (self,), lambda g: (_expand_back(g, a.shape, dims, keepdims),))

    def mean(self, axis=None, keepdims: bool = False):
        a = self.data
        dims = tuple(range(a.dim())) if axis is None else _dims(axis, a.dim())
        count = math.prod(a.shape[d] for d in dims) if a.dim() else 1
        s = self.sum(axis, keepdims)
        return s * (1.0 / count) if count else s * math.nan

    # -- the engine --------------------------------------------------------------------------
    def backward(self, grad: torch.Tensor | None = None) -> None:
        """Fill ``grad`` of every node this one depends on (that requires grad).

        Without ``grad`` the output must hold one number; otherwise pass the seed gradient
        d(loss)/d(this node), a tensor of this node's shape.
        """
        if grad is None:
            if self.data.numel() != 1:
                raise RuntimeError(
                    f"backward() without a seed gradient needs a one-element output, not shape "
                    f"{_shape(self.data.shape)}; pass one: out.backward(torch.ones_like(out.data))")
            grad = torch.ones_like(self.data)
        else:
            if not isinstance(grad, torch.Tensor):
                raise TypeError(f"backward(grad): grad must be a torch.Tensor, got {type(grad).__name__}.")
            if grad.shape != self.data.shape:
                raise ValueError(f"backward(grad): grad has shape {_shape(grad.shape)}, but the output "
                                 f"has shape {_shape(self.data.shape)}; they must match.")
            grad = grad.to(self.data.dtype, copy=True)  # the caller's tensor stays theirs
        if not self.requires_grad:
            raise RuntimeError("backward(): this Tensor does not depend on any Tensor that "
                               "requires grad, so there is nothing to differentiate.")
        order = topological_order(self)
        _check_saved(order)   # before any gradient changes
        for node in order:
            if node._backward is not None:
                node.grad = None
        self.grad = grad if self.grad is None else self.grad + grad
        for node in reversed(order):
            rule = node._backward
            if rule is None or node.grad is None:
                continue
            for inp, g in zip(node._inputs, rule(node.grad)):
                if g is None or not inp.requires_grad:
                    continue
                if inp.grad is not None:
                    inp.grad = inp.grad + g
                elif inp._backward is None and (g is node.grad or g._base is not None):
                    # A leaf keeps its own tensor: rules may pass their incoming gradient on
                    # (a + b gives it to both inputs) or a view of it (sum's expand), and a
                    # leaf's .grad may later be updated in place (clipping, momentum).
                    inp.grad = g.clone(memory_format=torch.contiguous_format)
                else:
                    inp.grad = g

    def zero_grad(self) -> None:
        self.grad = None


def _dims(axis, ndim: int) -> tuple:
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if not axes:  # torch reads dim=() as "every dimension", NumPy as "none": refuse the ambiguity
        raise ValueError("axis=() is ambiguous: pass axis=None to reduce over every dimension.")
    out = []
    for ax in axes:
        if isinstance(ax, bool) or not isinstance(ax, int) or not -max(ndim, 1) <= ax < max(ndim, 1):
            raise ValueError(f"axis {ax!r} is out of range for a tensor with {ndim} dimensions.")
        out.append(ax % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"axis {axis!r} names a dimension twice.")
    return tuple(sorted(out))


def _expand_back(g: torch.Tensor, shape, dims: tuple, keepdims: bool) -> torch.Tensor:
    """The backward of a sum over ``dims``: every summed entry receives the gradient of its sum."""
    if not keepdims and len(shape):
        for d in dims:  # ascending, so each index is still right after the previous unsqueeze
            g = g.unsqueeze(d)
    return g.expand(shape)


def _matmul_backward(g, a, b, ra, rb):
    a2 = a.unsqueeze(0) if a.dim() == 1 else a
    b2 = b.unsqueeze(-1) if b.dim() == 1 else b
    if b.dim() == 1:
        g = g.unsqueeze(-1)
    if a.dim() == 1:
        g = g.unsqueeze(-2)
    ga = unbroadcast(g @ b2.mT, a2.shape).reshape(a.shape) if ra else None
    gb = unbroadcast(a2.mT @ g, b2.shape).reshape(b.shape) if rb else None
    return ga, gb


def cross_entropy(logits: Tensor, labels: torch.Tensor) -> Tensor:
    """Mean softmax cross-entropy of ``logits`` (N, C) against integer ``labels`` (N,), fused.

    Forward: the stable log-softmax (max shift and log-sum-exp, PyTorch's ``log_softmax`` kernel).
    Backward: one rule for the whole loss, ``(softmax(logits) - onehot(labels)) / N``.
    ``labels`` may have any integer dtype (uint8 included: class indices, never a mask); each must
    lie in [0, C). PyTorch's ``ignore_index`` (label -100 skipped) is not supported.
    """
    fn = "cross_entropy"
    if not isinstance(logits, Tensor):
        raise TypeError(f"{fn}: logits must be a Tensor, got {type(logits).__name__}.")
    z = logits.data
    if z.dim() != 2:
        raise ValueError(f"{fn}: logits must have shape (N, C), got {_shape(z.shape)}.")
    if (not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex()
            or labels.dtype == torch.bool):
        got = f"dtype {labels.dtype}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise TypeError(f"{fn}: labels must be a torch.Tensor of integer class indices, got {got}; "
                        f"for float indices use labels.long(), for one-hot rows labels.argmax(1).")
    n, c = z.shape
    if labels.shape != (n,):
        raise ValueError(f"{fn}: labels must have shape ({n},), one class per row of logits "
                         f"{_shape(z.shape)}, got {_shape(labels.shape)}.")
    if labels.dtype != torch.long:
        # gather needs int64 indices; uint16/32/64 support no comparisons (a huge uint64 turns
        # negative here, and so out of range below).
        labels = labels.long()
    if n:
        lo, hi = torch.aminmax(labels)
        if lo < 0 or hi >= c:
            raise ValueError(f"{fn}: labels must lie in [0, {c}) for logits with {c} classes, got values "
                             f"from {int(lo)} to {int(hi)} (PyTorch's ignore_index is not supported).")
    logp = torch.log_softmax(z, dim=1)
    idx = labels.unsqueeze(1)
    loss = logp.gather(1, idx).sum().neg_().div_(n)

    def backward(g):
        d = logp.exp()
        d.scatter_add_(1, idx, torch.full((n, 1), -1.0, dtype=d.dtype))
        return (d.mul_(g / n),)

    return _node(loss, (logits,), backward, "cross_entropy", (idx,))

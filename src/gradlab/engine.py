"""A small reverse-mode autograd engine: scalar :class:`Value` and :class:`Tensor` (chapters 08 and 09).

One design for both classes
---------------------------
* Every result of an operation is a *node*: it keeps its ``data``, the nodes it was computed from
  (``_inputs``) and its *local backward rule* ``_backward``, a function that takes the gradient of
  the node (``g``, the shape of ``data``) and returns one gradient per input (``None`` for an input
  that needs none). A node built directly from data (a *leaf*) has no inputs and no rule.
* ``root.backward()`` orders the graph so that every node comes after all the nodes computed from
  it (reverse topological order), seeds ``root.grad`` with 1 and hands each node's gradient to its
  rule, *adding* what the rule returns to each input's ``grad``: a node used twice (``a + a``) gets
  the sum of both contributions.
* Leaves accumulate over calls, like PyTorch's ``.grad``: call :meth:`zero_grad` (or set
  ``grad`` back to 0 / ``None``) between training steps. Interior nodes are reset at the start of
  every ``backward()``, so a second call adds exactly the same gradient to the leaves again.

``Value`` holds a Python float; its ``grad`` starts at 0.0. ``Tensor`` holds a floating-point
``torch.Tensor`` and runs PyTorch kernels on it with autograd never involved (its data never
requires grad); its ``grad`` starts at ``None``. Elementwise operations broadcast like PyTorch's,
and their backward rules sum the gradient back to each input's shape (:func:`unbroadcast`).
"""
from __future__ import annotations

import math
from numbers import Real

import torch

from ._printed import format_shape

__all__ = ["Value", "Tensor", "unbroadcast", "cross_entropy", "topological_order"]


def topological_order(root) -> list:
    """Every node reachable from ``root``, each after all of its inputs (``root`` last).

    Iterative depth-first search, so deep graphs do not hit Python's recursion limit. Only nodes
    with ``requires_grad`` are followed (every ``Value`` has it).
    """
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        for inp in node._inputs:
            if inp.requires_grad and inp not in seen:
                stack.append((inp, False))
    return order


# ==================================================================================================
# Value: one float


def _as_value(x) -> "Value":
    if isinstance(x, Value):
        return x
    if isinstance(x, bool) or not isinstance(x, Real):
        raise TypeError(f"Value works with real numbers, got {type(x).__name__} ({x!r}).")
    return Value(x)


class Value:
    """A scalar node: ``data`` (float), ``grad`` (float, d root / d this node after backward)."""

    __slots__ = ("data", "grad", "_inputs", "_backward")
    requires_grad = True

    def __init__(self, data, _inputs: tuple = (), _backward=None):
        if isinstance(data, bool) or not isinstance(data, Real):
            raise TypeError(f"Value holds one real number, got {type(data).__name__} ({data!r}).")
        self.data = float(data)
        self.grad = 0.0
        self._inputs = _inputs
        self._backward = _backward

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    # -- operations: each returns a node with its inputs and its local backward rule ----------
    def __add__(self, other):
        other = _as_value(other)
        return Value(self.data + other.data, (self, other), lambda g: (g, g))

    def __mul__(self, other):
        other = _as_value(other)
        a, b = self.data, other.data
        return Value(a * b, (self, other), lambda g: (g * b, g * a))

    def __pow__(self, p):
        if isinstance(p, bool) or not isinstance(p, Real):
            raise TypeError(f"Value ** p needs a real number p, got {type(p).__name__}.")
        a = self.data
        if p == 0:  # constant 1: gradient 0, also at a = 0 (where a ** (p - 1) would divide by 0)
            return Value(1.0, (self,), lambda g: (0.0,))
        return Value(a ** p, (self,), lambda g: (g * p * a ** (p - 1),))

    def __truediv__(self, other):
        other = _as_value(other)
        a, b = self.data, other.data
        return Value(a / b, (self, other), lambda g: (g / b, -g * a / (b * b)))

    def relu(self):
        a = self.data
        return Value(a if a > 0 else 0.0, (self,), lambda g: (g if a > 0 else 0.0,))

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), lambda g: (g * (1.0 - t * t),))

    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), lambda g: (g * e,))

    def log(self):
        a = self.data
        return Value(math.log(a), (self,), lambda g: (g / a,))

    # -- the rest, from the operations above -----------------------------------------------
    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-_as_value(other))

    def __radd__(self, other):
        return _as_value(other) + self

    def __rmul__(self, other):
        return _as_value(other) * self

    def __rsub__(self, other):
        return _as_value(other) - self

    def __rtruediv__(self, other):
        return _as_value(other) / self

    # -- the engine -------------------------------------------------------------------------
    def backward(self) -> None:
        """Fill ``grad`` of every node this one depends on with d self / d node."""
        order = topological_order(self)
        for node in order:
            if node._inputs:
                node.grad = 0.0
        self.grad += 1.0
        for node in reversed(order):
            if node._inputs:
                for inp, g in zip(node._inputs, node._backward(node.grad)):
                    inp.grad += g

    def zero_grad(self) -> None:
        self.grad = 0.0


# ==================================================================================================
# Tensor: a torch.Tensor of floats


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


def _node(data: torch.Tensor, inputs: tuple, backward) -> "Tensor":
    """A result node, built without Tensor.__init__'s checks (the hot path of every operation)."""
    out = object.__new__(Tensor)
    out.data, out.grad = data, None
    out.requires_grad = False
    for inp in inputs:
        if inp.requires_grad:
            out.requires_grad = True
            break
    if out.requires_grad:
        out._inputs, out._backward = inputs, backward
    else:
        out._inputs, out._backward = (), None
    return out


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

    __slots__ = ("data", "grad", "requires_grad", "_inputs", "_backward")

    def __init__(self, data, requires_grad: bool = True):
        if isinstance(data, Tensor):
            data = data.data
        if isinstance(data, torch.Tensor):
            data = _check_float(data, "Tensor data").detach()
        else:
            data = torch.tensor(data, dtype=torch.get_default_dtype())
        self.data, self.grad = data, None
        self.requires_grad = bool(requires_grad)
        self._inputs, self._backward = (), None

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
            unbroadcast(g * a, b.shape) if rb else None))

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
        return _node(out, (self, other), lambda g: (
            unbroadcast(g / b, a.shape) if ra else None,
            unbroadcast(-g * out / b, b.shape) if rb else None))

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
            return _node(a * a, (self,), lambda g: (g * 2.0 * a,))
        if p == 0:  # a ** 0 is constant: gradient 0 everywhere, also at a = 0 (as PyTorch's)
            return _node(torch.ones_like(a), (self,), lambda g: (torch.zeros_like(a),))
        return _node(a ** p, (self,), lambda g: (g * p * a ** (p - 1),))

    def exp(self):
        out = self.data.exp()
        return _node(out, (self,), lambda g: (g * out,))

    def log(self):
        a = self.data
        return _node(a.log(), (self,), lambda g: (g / a,))

    def tanh(self):
        out = self.data.tanh()
        return _node(out, (self,), lambda g: (g * (1.0 - out * out),))

    def relu(self):
        out = self.data.relu()
        # out >= 0, so sign(out) is the 0/1 mask of out > 0; it is a much cheaper kernel than a
        # comparison, which makes a bool tensor that the product must then convert.
        return _node(out, (self,), lambda g: (g * out.sign(),))

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
                                                        a.T @ g if rb else None))
        return _node(out, (self, other), lambda g: _matmul_backward(g, a, b, ra, rb))

    # -- reductions --------------------------------------------------------------------------
    def sum(self, axis=None, keepdims: bool = False):
        a = self.data
        if axis is None:
            shape = a.shape
            return _node(a.sum(), (self,), lambda g: (g.expand(shape),))
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
    """
    if not isinstance(logits, Tensor):
        raise TypeError(f"cross_entropy: logits must be a Tensor, got {type(logits).__name__}.")
    z = logits.data
    if z.dim() != 2:
        raise ValueError(f"cross_entropy: logits must have shape (N, C), got {_shape(z.shape)}.")
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError("cross_entropy: labels must be a torch.Tensor of integer class indices.")
    n = z.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"cross_entropy: labels must have shape ({n},), got {_shape(labels.shape)}.")
    logp = torch.log_softmax(z, dim=1)
    idx = labels.unsqueeze(1)
    loss = logp.gather(1, idx).sum().neg_().div_(n)

    def backward(g):
        d = logp.exp()
        d.scatter_add_(1, idx, torch.full((n, 1), -1.0, dtype=d.dtype))
        return (d.mul_(g / n),)

    return _node(loss, (logits,), backward)

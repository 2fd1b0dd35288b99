"""Chapter 08's engine: :class:`Value`, one float with its gradient, and :func:`topological_order`.

``Value`` computes as PyTorch does on a float64 scalar, at the edges too. Python's float
arithmetic raises where IEEE arithmetic (and so PyTorch) gives an infinity or NaN (``1.0 / 0.0``,
``0.0 ** -1``, ``math.log(0.0)``, ``math.exp(1000.0)``); the helpers below give the IEEE result
instead, so ``Value(0.0).log()`` is ``-inf`` with slope ``inf``, ``Value(0.0) ** 0.5`` is 0 with
slope ``inf``, and ``Value(nan).relu()`` is NaN with slope 1, each as in PyTorch.
"""
from __future__ import annotations

import math
from numbers import Real

__all__ = ["Value", "topological_order"]

_INF = math.inf


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


# --------------------------------------------------------------------------------------------------
# IEEE arithmetic on Python floats (what PyTorch computes on a float64 scalar)


def _odd_integer(p: float) -> bool:
    return math.isfinite(p) and p == int(p) and int(p) % 2 == 1


def _div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:        # b is +0.0 or -0.0
        if a != a or a == 0:
            return math.nan
        return math.copysign(_INF, a) * math.copysign(1.0, b)


def _pow(a: float, p: float) -> float:
    try:
        r = a ** p
    except ZeroDivisionError:        # (+-0) ** negative
        return math.copysign(_INF, a) if _odd_integer(p) else _INF
    except OverflowError:
        return -_INF if a < 0 and _odd_integer(p) else _INF
    return math.nan if isinstance(r, complex) else r     # a negative base, a fractional power


def _exp(a: float) -> float:
    try:
        return math.exp(a)
    except OverflowError:
        return _INF


def _log(a: float) -> float:
    if a > 0 or a != a:              # positive, +inf or NaN
        return math.log(a)
    return -_INF if a == 0 else math.nan


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
            raise TypeError(f"Value ** p needs a real number p (a constant exponent), got {type(p).__name__}.")
        a, p = self.data, float(p)
        if p == 0:  # constant 1: gradient 0 everywhere, also at a = 0 and at NaN (as PyTorch's)
            return Value(1.0, (self,), lambda g: (0.0,))
        # d(a^p)/da = p a^(p-1): infinite at a = 0 when p < 1, as in PyTorch
        return Value(_pow(a, p), (self,), lambda g: (g * (p * _pow(a, p - 1)),))

    def __truediv__(self, other):
        other = _as_value(other)
        a, b = self.data, other.data
        # PyTorch's rules: d/da = g / b, d/db = -g * ((a / b) / b)
        return Value(_div(a, b), (self, other), lambda g: (_div(g, b), -g * _div(_div(a, b), b)))

    def relu(self):
        a = self.data
        out = 0.0 if a < 0 else a       # NaN stays NaN, as in torch.relu
        # PyTorch selects: the gradient passes unless out <= 0 (so it passes at NaN, slope 1)
        return Value(out, (self,), lambda g: (0.0 if out <= 0 else g,))

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), lambda g: (g * (1.0 - t * t),))

    def exp(self):
        e = _exp(self.data)
        return Value(e, (self,), lambda g: (g * e,))

    def log(self):
        a = self.data
        return Value(_log(a), (self,), lambda g: (_div(g, a),))

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

"""Forward mode and second order: dual numbers, JVPs from VJPs, Hessian-vector products.

- :class:`Dual`: a dual number ``a + b·ε`` with ``ε² = 0``, its ``primal`` ``a`` and ``tangent``
  ``b``. Every operation applies its derivative rule to the tangent, so one pass through a
  function of Duals gives its value and its directional derivative (forward mode, on Python
  numbers). Arithmetic follows float64 tensors in PyTorch: ``1 / 0`` is ``inf``, ``log(-1)`` is
  ``nan``, ``relu`` has slope 0 at 0.
- :func:`derivative` (one input, one output) and :func:`jvp` (several of each) run a function of
  Duals once with a seeded tangent.
- :func:`jvp_via_vjp`: ``J v`` for a tensor function from two reverse passes (the double-backward
  trick): ``u -> Jᵀu`` is linear in ``u``, and its own VJP with ``v`` is ``J v``.
- :func:`hvp`: the Hessian-vector product ``H v`` of a scalar function, forward-over-reverse
  (``torch.func.jvp`` of ``torch.func.grad``) or reverse-over-reverse (``create_graph=True`` and a
  second ``torch.autograd.grad``); :func:`hessian` stacks ``n`` of them.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from ._validate import is_real_number, require_float_tensor, shape_str

__all__ = ["Dual", "derivative", "jvp", "jvp_via_vjp", "hvp", "hessian", "HVP_MODES"]

HVP_MODES = ("forward-over-reverse", "reverse-over-reverse")


# -- float64 arithmetic as PyTorch does it: inf and nan instead of Python's exceptions ------------

def _div(a: float, b: float) -> float:
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _log(a: float) -> float:
    if a > 0 or math.isnan(a):
        return math.log(a)
    return -math.inf if a == 0 else math.nan


def _exp(a: float) -> float:
    try:
        return math.exp(a)
    except OverflowError:
        return math.inf


def _odd_integer(b: float) -> bool:
    return math.isfinite(b) and b == int(b) and int(b) % 2 == 1


def _pow(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except OverflowError:
        return -math.inf if a < 0 and _odd_integer(b) else math.inf
    except ValueError:                       # 0 ** negative, or negative ** fraction
        if a == 0:
            return math.copysign(math.inf, a) if _odd_integer(b) else math.inf
        return math.nan


def _periodic(fn, a: float) -> float:
    return math.nan if math.isinf(a) else fn(a)


def _real(value, what: str) -> float:
    if isinstance(value, Dual):
        raise TypeError(f"{what} is a Dual; a Dual's primal and tangent are real numbers (nested "
                        f"Duals for higher derivatives are not supported). Pass value.primal.")
    if not is_real_number(value):
        hint = (" A tensor carries its own tangent in torch.func.jvp; for one element use .item()."
                if isinstance(value, torch.Tensor) else "")
        raise TypeError(f"{what} must be a real number (int or float), got {type(value).__name__}."
                        + hint)
    return float(value)


class Dual:
    """The dual number ``primal + tangent·ε``, with ``ε² = 0``.

    ``Dual(x, 1.0)`` seeds the input of a function: every operation carries the value forward in
    ``primal`` and its derivative with respect to ``x`` in ``tangent``. Real numbers mix freely
    (``2 * d``, ``1 / d``, ``d ** 0.5``, ``2 ** d``) and count as constants (tangent 0).
    """

    __slots__ = ("primal", "tangent")

    def __init__(self, primal, tangent=0.0):
        self.primal = _real(primal, "Dual: primal")
        self.tangent = _real(tangent, "Dual: tangent")

    def __repr__(self) -> str:
        return f"Dual(primal={self.primal!r}, tangent={self.tangent!r})"

    def __eq__(self, other) -> bool:        # for tests and printing; not part of differentiation
        return (isinstance(other, Dual) and self.primal == other.primal
                and self.tangent == other.tangent)

    __hash__ = None

    @staticmethod
    def _lift(other, op: str) -> "Dual":
        if isinstance(other, Dual):
            return other
        if not is_real_number(other):
            raise TypeError(f"Dual {op}: the other operand must be a Dual or a real number, got "
                            f"{type(other).__name__}.")
        return Dual(other)

    # sums and products
    def __add__(self, other):
        o = Dual._lift(other, "+")
        return Dual(self.primal + o.primal, self.tangent + o.tangent)

    __radd__ = __add__

    def __sub__(self, other):
        o = Dual._lift(other, "-")
        return Dual(self.primal - o.primal, self.tangent - o.tangent)

    def __rsub__(self, other):
        return Dual._lift(other, "-") - self

    def __neg__(self):
        return Dual(-self.primal, -self.tangent)

    def __pos__(self):
        return self

    def __mul__(self, other):
        o = Dual._lift(other, "*")
        return Dual(self.primal * o.primal, self.tangent * o.primal + self.primal * o.tangent)

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = Dual._lift(other, "/")
        q = _div(self.primal, o.primal)
        return Dual(q, _div(self.tangent - q * o.tangent, o.primal))

    def __rtruediv__(self, other):
        return Dual._lift(other, "/") / self

    def __pow__(self, other):
        o = Dual._lift(other, "**")
        a, b = self.primal, o.primal
        value = _pow(a, b)
        # d(a^b) = b a^(b-1) da + a^b log(a) db; each term only where its tangent is nonzero,
        # and at a = 0 with b >= 0 the second is 0 (PyTorch's convention).
        slope = 0.0
        if self.tangent != 0:
            slope += b * _pow(a, b - 1) * self.tangent
        if o.tangent != 0:
            slope += (0.0 if a == 0 and b >= 0 else value * _log(a)) * o.tangent
        return Dual(value, slope)

    def __rpow__(self, other):
        return Dual._lift(other, "**") ** self

    # elementary functions
    def exp(self):
        e = _exp(self.primal)
        return Dual(e, e * self.tangent)

    def log(self):
        return Dual(_log(self.primal), _div(self.tangent, self.primal))

    def sin(self):
        return Dual(_periodic(math.sin, self.primal),
                    _periodic(math.cos, self.primal) * self.tangent)

    def cos(self):
        return Dual(_periodic(math.cos, self.primal),
                    -_periodic(math.sin, self.primal) * self.tangent)

    def tanh(self):
        t = math.tanh(self.primal)
        return Dual(t, (1 - t * t) * self.tangent)

    def relu(self):
        a = self.primal
        if a > 0 or math.isnan(a):
            return Dual(a, self.tangent)
        return Dual(0.0, 0.0)             # slope 0 at 0, as torch.relu


def _check_f(f, who: str) -> None:
    if not callable(f):
        raise TypeError(f"{who}: f must be a function, got {type(f).__name__}. Pass the function "
                        f"itself, e.g. {who}(lambda x: x.sin() * x, ...), not its value.")


def _unpack(out, who: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    outs = out if isinstance(out, tuple) else (out,)
    values, tangents = [], []
    for i, o in enumerate(outs):
        if isinstance(o, Dual):
            values.append(o.primal)
            tangents.append(o.tangent)
        elif is_real_number(o):             # a constant output: slope 0
            values.append(float(o))
            tangents.append(0.0)
        else:
            where = f"output {i} of f" if isinstance(out, tuple) else "f's output"
            raise TypeError(f"{who}: {where} is a {type(o).__name__}; f must return a Dual (or a "
                            f"tuple of Duals) built from its arguments with Dual operations.")
    return tuple(values), tuple(tangents)


def derivative(f: Callable[[Dual], Dual], x) -> tuple[float, float]:
    """``(f(x), f'(x))`` for a real function of one real number, in one forward pass.

    ``f`` is written with Dual operations (``+ - * / **``, ``.exp()``, ``.sin()``, ...); it is
    called once with ``Dual(x, 1.0)``. A constant result (a real number) has slope 0.
    """
    _check_f(f, "derivative")
    x = _real(x, "derivative: x")
    out = f(Dual(x, 1.0))
    if isinstance(out, tuple):
        raise TypeError(f"derivative: f returned a tuple of {len(out)}; derivative is for one output. "
                        f"Use gradlab.forward.jvp for several outputs.")
    (value,), (slope,) = _unpack(out, "derivative")
    return value, slope


def jvp(f: Callable[..., Dual | tuple], xs: Sequence, vs: Sequence
        ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(f(xs), J vs)``: the values and tangents of ``f`` at ``xs`` along the direction ``vs``.

    ``f`` takes ``len(xs)`` Duals and returns one Dual or a tuple of them; it runs once, with
    ``Dual(xs[i], vs[i])`` as argument ``i``. Both results are tuples of floats, one per output
    (a single Dual counts as one output).
    """
    _check_f(f, "jvp")
    for name, seq in (("xs", xs), ("vs", vs)):
        if isinstance(seq, (str, bytes, torch.Tensor)) or not isinstance(seq, Sequence):
            raise TypeError(f"jvp: {name} must be a list or tuple of real numbers, got "
                            f"{type(seq).__name__}.")
    if len(xs) != len(vs):
        raise ValueError(f"jvp: xs has {len(xs)} numbers but vs has {len(vs)}; give one tangent "
                         f"per input.")
    duals = [Dual(_real(x, f"jvp: xs[{i}]"), _real(v, f"jvp: vs[{i}]"))
             for i, (x, v) in enumerate(zip(xs, vs))]
    return _unpack(f(*duals), "jvp")


# -- tensors -----------------------------------------------------------------------------------

def _leaf(x, who: str) -> torch.Tensor:
    x = require_float_tensor(x, f"{who}: x")
    return x.detach().clone().requires_grad_(True)


def _direction(v, x: torch.Tensor, who: str) -> torch.Tensor:
    v = require_float_tensor(v, f"{who}: v")
    if v.shape != x.shape:
        raise ValueError(f"{who}: v has shape {shape_str(v)} but x has shape {shape_str(x)}; the "
                         f"direction v lives in x's space, so it must have x's shape.")
    return v.detach().to(x.dtype)


def _output(y, x: torch.Tensor, who: str) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or not y.is_floating_point():
        got = f"dtype {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise TypeError(f"{who}: f(x) must be a floating-point tensor, got {got} (for x of shape "
                        f"{shape_str(x)}). Build it from x with torch operations.")
    return y


def jvp_via_vjp(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, v: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f(x), J v)`` from two reverse-mode passes: the double-backward trick.

    ``g(u) = Jᵀu`` (one VJP, recorded with ``create_graph=True`` from a dummy ``u`` of ``f(x)``'s
    shape) is linear in ``u`` with matrix ``Jᵀ``; the VJP of ``g`` with ``v`` is ``(Jᵀ)ᵀ v = J v``.
    Shapes: ``v`` has ``x``'s shape, the result ``f(x)``'s. ``f``'s backward must itself be
    differentiable.
    """
    who = "jvp_via_vjp"
    _check_f(f, who)
    x0 = _leaf(x, who)
    v = _direction(v, x0, who)
    with torch.enable_grad():
        y = _output(f(x0), x0, who)
        if not y.requires_grad:                       # f does not depend on x
            return y.detach(), torch.zeros_like(y)
        u = torch.zeros_like(y, requires_grad=True)   # its value never matters: g is linear in u
        (g,) = torch.autograd.grad(y, x0, u, create_graph=True, allow_unused=True)
        if g is None or not g.requires_grad:
            return y.detach(), torch.zeros_like(y)
        (jv,) = torch.autograd.grad(g, u, v, allow_unused=True)
    return y.detach(), (torch.zeros_like(y) if jv is None else jv)


def _scalar(y, x: torch.Tensor, who: str) -> torch.Tensor:
    y = _output(y, x, who)
    if y.numel() != 1:
        raise ValueError(f"{who}: f(x) must be a scalar (one element) to have a Hessian, got shape "
                         f"{shape_str(y)}. Reduce it first (e.g. .sum()), or take one output.")
    return y.reshape(())


def _mode(mode, who: str) -> str:
    if mode not in HVP_MODES:
        raise ValueError(f"{who}: mode must be one of {', '.join(map(repr, HVP_MODES))}, got "
                         f"{mode!r}.")
    return mode


def hvp(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, v: torch.Tensor,
        mode: str = "forward-over-reverse") -> torch.Tensor:
    """The Hessian-vector product ``H v`` of a scalar function ``f`` at ``x``, of ``x``'s shape.

    ``"forward-over-reverse"``: the JVP (``torch.func.jvp``) of the gradient function
    (``torch.func.grad``) along ``v``. ``"reverse-over-reverse"``: the gradient with
    ``create_graph=True``, then the VJP of that gradient with ``v`` (``H`` is symmetric). Neither
    forms ``H``.
    """
    return _hvp(f, x, v, mode, "hvp")


def _hvp(f, x, v, mode, who: str) -> torch.Tensor:
    _check_f(f, who)
    mode = _mode(mode, who)
    x0 = _leaf(x, who)
    v = _direction(v, x0, who)
    if mode == "forward-over-reverse":
        with torch.no_grad():
            _scalar(f(x0.detach()), x0, who)
        scalar_f = lambda t: f(t).reshape(())        # noqa: E731
        _, hv = torch.func.jvp(torch.func.grad(scalar_f), (x0.detach(),), (v,))
        return hv
    with torch.enable_grad():
        y = _scalar(f(x0), x0, who)
        if not y.requires_grad:
            return torch.zeros_like(x0).detach()
        (g,) = torch.autograd.grad(y, x0, create_graph=True, allow_unused=True)
        if g is None or not g.requires_grad:         # f is at most linear in x: H = 0
            return torch.zeros_like(x0).detach()
        (hv,) = torch.autograd.grad(g, x0, v, allow_unused=True)
    return torch.zeros_like(x0).detach() if hv is None else hv


def hessian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
            mode: str = "forward-over-reverse") -> torch.Tensor:
    """The full Hessian of a scalar ``f`` at ``x``, from ``n = x.numel()`` Hessian-vector products.

    Shape ``x.shape + x.shape`` (that of ``torch.func.hessian``): ``H[i..., j...]`` is
    ``∂²f / ∂x[i...] ∂x[j...]``. Column ``j`` is ``H e_j``, one HVP per input element.
    """
    who = "hessian"
    _check_f(f, who)
    mode = _mode(mode, who)
    x0 = require_float_tensor(x, f"{who}: x").detach()
    n = x0.numel()
    if n == 0:
        raise ValueError(f"{who}: x has no elements (shape {shape_str(x0)}); there is no Hessian.")
    columns = []
    for j in range(n):
        e_j = torch.zeros(n, dtype=x0.dtype)
        e_j[j] = 1
        columns.append(_hvp(f, x0, e_j.reshape(x0.shape), mode, who).reshape(n))
    H = torch.stack(columns, dim=1)
    return H.reshape(*x0.shape, *x0.shape)

"""Forward mode and second order: dual numbers, JVPs from VJPs, Hessian-vector products.

- :class:`Dual`: a dual number ``a + b·ε`` with ``ε² = 0``, its ``primal`` ``a`` and ``tangent``
  ``b``. Every operation applies its derivative rule to the tangent, so one pass through a
  function of Duals gives its value and its directional derivative (forward mode, on Python
  numbers). Arithmetic follows float64 tensors in ``torch.func.jvp``: ``1 / 0`` is ``inf``,
  ``log(-1)`` is ``nan``, ``relu`` has slope 0 at 0, ``x ** 0`` has slope 0 even at 0. A Dual
  operand acts as a tensor with a tangent (its terms are computed even when that tangent is 0, so
  ``0 * inf`` gives ``nan`` as in PyTorch); a real operand is a constant, as a Python scalar is in
  PyTorch (``Dual(inf, 1) * 0`` has tangent 0, ``Dual(1, 1) / 0`` tangent ``inf``).
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


def _pow(a: float, b: float, scalar: bool = False) -> float:
    # PyTorch computes a tensor to the Python scalar 0.5 or -0.5 with sqrt and rsqrt, whose
    # results at -0.0 and -inf differ from C's pow (sqrt(-0.0) = -0.0, rsqrt(-inf) = nan).
    if scalar and b in (0.5, -0.5):
        root = math.nan if a < 0 else (a if a == 0 or math.isnan(a) else math.sqrt(a))
        return root if b > 0 else _div(1.0, root)
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
    try:
        return float(value)
    except OverflowError:
        digits = len(str(abs(int(value))))
        raise OverflowError(f"{what} is an integer too large for a float64 ({digits} digits); "
                            f"PyTorch cannot hold it either.") from None


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
        if not isinstance(other, Dual):              # a constant: no term for its tangent
            c = Dual._lift(other, "*").primal
            return Dual(self.primal * c, self.tangent * c)
        return Dual(self.primal * other.primal,
                    self.tangent * other.primal + self.primal * other.tangent)

    __rmul__ = __mul__

    def __truediv__(self, other):
        if not isinstance(other, Dual):
            c = Dual._lift(other, "/").primal
            return Dual(_div(self.primal, c), _div(self.tangent, c))
        q = _div(self.primal, other.primal)
        return Dual(q, _div(self.tangent - q * other.tangent, other.primal))

    def __rtruediv__(self, other):                   # c / d, as PyTorch: reciprocal(d) * c
        c = Dual._lift(other, "/").primal
        r = _div(1.0, self.primal)
        return Dual(r * c, -self.tangent * r * r * c)

    def __pow__(self, other):
        # d(a^b) = b a^(b-1) da + a^b log(a) db, with PyTorch's two conventions: the first term
        # is 0 where b = 0, the second 0 where a = 0 and b >= 0. A real b is a constant (no
        # second term); a Dual b always has both, as a tensor exponent in torch.func.jvp.
        scalar = not isinstance(other, Dual)
        o = Dual._lift(other, "**")
        a, b = self.primal, o.primal
        value = _pow(a, b, scalar)
        slope = 0.0 if b == 0 else b * _pow(a, b - 1, scalar) * self.tangent
        if not scalar:
            slope += (0.0 if a == 0 and b >= 0 else value * _log(a)) * o.tangent
        return Dual(value, slope)

    def __rpow__(self, other):                       # c ** d, a constant base c
        c = Dual._lift(other, "**").primal
        value = _pow(c, self.primal)
        return Dual(value, (0.0 if c == 0 and self.primal >= 0 else value * _log(c)) * self.tangent)

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
        return Dual(a if a == 0 else 0.0, 0.0)   # slope 0 at 0 and relu(-0.0) = -0.0, as torch.relu


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
    # a clone made outside inference mode, so that autograd records f even inside
    # torch.inference_mode() (an inference tensor would leave every gradient silently 0)
    with torch.inference_mode(False):
        return x.detach().clone().requires_grad_(True)


def _direction(v, x: torch.Tensor, who: str) -> torch.Tensor:
    v = require_float_tensor(v, f"{who}: v")
    if v.shape != x.shape:
        raise ValueError(f"{who}: v has shape {shape_str(v)} but x has shape {shape_str(x)}; the "
                         f"direction v lives in x's space, so it must have x's shape.")
    with torch.inference_mode(False):
        return v.detach().to(x.dtype).clone()


def _output(y, x: torch.Tensor, who: str) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or not y.is_floating_point():
        got = f"dtype {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise TypeError(f"{who}: f(x) must be a floating-point tensor, got {got} (for x of shape "
                        f"{shape_str(x)}). Build it from x with torch operations.")
    return y


def _no_leak(f, x: torch.Tensor, v: torch.Tensor, y: torch.Tensor, who: str) -> None:
    """f(x) has no graph back to x: fine if f is constant along v, an error if it moves."""
    if x.numel() == 0 or not v.any():
        return
    h = torch.finfo(x.dtype).eps ** (1 / 3) * max(x.abs().max().item(), 1.0) / v.abs().max().item()
    with torch.no_grad():
        up, down = f(x.detach() + h * v), f(x.detach() - h * v)
    if not (isinstance(up, torch.Tensor) and isinstance(down, torch.Tensor)
            and up.shape == y.shape == down.shape):
        return
    base, up, down = (t.detach().double() for t in (y, up, down))
    floor = 64 * torch.finfo(y.dtype).eps * max(base.abs().max().item(), 1e-30)
    right, left = up - base, base - down
    if bool(((right * left > 0) & (right.abs() > floor) & (left.abs() > floor)).any()):
        raise ValueError(f"{who}: f(x) changes when x moves along v, yet autograd recorded no "
                         f"dependence on x: f leaves autograd (.numpy(), .item(), "
                         f"torch.tensor(...) of x's values, .data). Build f(x) from x with torch "
                         f"operations.")


def _once_differentiable(t: torch.Tensor) -> bool:
    """Does t's graph hold a backward marked @once_differentiable (an error node)?

    ``torch.autograd.grad(t, x)`` can miss such a node and return no gradient instead of raising.
    """
    todo, seen = [t.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node.name().endswith("::Error"):
            return True
        todo.extend(n for n, _ in node.next_functions)
    return False


_ONCE = ("{who}: f calls a custom autograd.Function whose backward is marked @once_differentiable, "
         "so {what} cannot differentiate it again. Write that backward with differentiable torch "
         "operations (chapter 04), or use torch.func.jvp with a jvp rule on the Function.")


def jvp_via_vjp(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, v: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f(x), J v)`` from two reverse-mode passes: the double-backward trick.

    ``g(u) = Jᵀu`` (one VJP, recorded with ``create_graph=True`` from a dummy ``u`` of ``f(x)``'s
    shape) is linear in ``u`` with matrix ``Jᵀ``; the VJP of ``g`` with ``v`` is
    ``(Jᵀ)ᵀ v = J v``.
    Shapes: ``v`` has ``x``'s shape, the result ``f(x)``'s. Every backward on the way must be
    differentiable in its upstream gradient: one that is not (``@once_differentiable``, or a
    custom backward that detaches ``grad_output``) breaks the pairing ``<u, J v> = <Jᵀu, v>``,
    which is checked, and raises a ``RuntimeError`` where ``torch.autograd.functional.jvp``
    would return zeros.
    """
    who = "jvp_via_vjp"
    _check_f(f, who)
    x0 = _leaf(x, who)
    v = _direction(v, x0, who)
    with torch.inference_mode(False), torch.enable_grad():
        y = _output(f(x0.clone()), x0, who)           # a clone: f may work in place
        if not y.requires_grad:                       # no graph: f is constant, or left autograd
            _no_leak(f, x0, v, y, who)
            return y.detach(), torch.zeros_like(y)
        # u's value never matters (g is linear in u); a random one lets the pairing check below
        # see a broken link, which u = 0 would hide (0 = 0)
        u = torch.randn(y.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        u = u.to(y.dtype).requires_grad_(True)
        (g,) = torch.autograd.grad(y, x0, u, create_graph=True, allow_unused=True)
        if g is None:                                 # y does not depend on x
            return y.detach(), torch.zeros_like(y)
        if g.requires_grad and _once_differentiable(g):
            raise RuntimeError(_ONCE.format(who=who, what="the double-backward trick"))
        jv = torch.autograd.grad(g, u, v, allow_unused=True)[0] if g.requires_grad else None
        jv = torch.zeros_like(y) if jv is None else jv
    lhs, rhs = (u.detach() * jv).sum().item(), (g.detach() * v).sum().item()
    scale = (u.detach() * jv).abs().sum().item() + (g.detach() * v).abs().sum().item()
    tol = 1e3 * torch.finfo(y.dtype).eps * scale
    if math.isfinite(lhs) and math.isfinite(rhs) and abs(lhs - rhs) > tol:
        raise RuntimeError(f"{who}: <u, J v> differs from <J^T u, v>, so some backward inside f "
                           f"is not differentiable in its upstream gradient (a custom Function "
                           f"whose backward detaches grad_output, or leaves torch). The "
                           f"double-backward trick needs it; use torch.func.jvp instead.")
    return y.detach(), jv


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
    (``torch.func.grad``) along ``v``; a custom ``autograd.Function`` inside ``f`` then needs a
    ``jvp`` rule. ``"reverse-over-reverse"``: the gradient with ``create_graph=True``, then the
    VJP of that gradient with ``v`` (``H`` is symmetric); a custom Function needs a differentiable
    backward. Neither forms ``H``.
    """
    return _hvp(f, x, v, mode, "hvp")


def _hvp(f, x, v, mode, who: str) -> torch.Tensor:
    _check_f(f, who)
    mode = _mode(mode, who)
    x0 = _leaf(x, who)
    v = _direction(v, x0, who)
    with torch.inference_mode(False):
        if mode == "forward-over-reverse":
            with torch.no_grad():
                _scalar(f(x0.detach().clone()), x0, who)
            scalar_f = lambda t: f(t).reshape(())        # noqa: E731
            try:
                _, hv = torch.func.jvp(torch.func.grad(scalar_f), (x0.detach(),), (v,))
            except NotImplementedError as err:
                err.add_note(f"({who}: forward-over-reverse runs forward mode through f; "
                             f"mode='reverse-over-reverse' needs only differentiable backwards.)")
                raise
            return hv
        with torch.enable_grad():
            y = _scalar(f(x0.clone()), x0, who)
            if not y.requires_grad:
                _no_leak(f, x0, v, y, who)
                return torch.zeros_like(x0).detach()
            (g,) = torch.autograd.grad(y, x0, create_graph=True, allow_unused=True)
            if g is None or not g.requires_grad:     # f is at most linear in x: H = 0
                return torch.zeros_like(x0).detach()
            if _once_differentiable(g):
                raise RuntimeError(_ONCE.format(who=who, what="reverse-over-reverse"))
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
    with torch.inference_mode(False):
        for j in range(n):
            e_j = torch.zeros(n, dtype=x0.dtype)
            e_j[j] = 1
            columns.append(_hvp(f, x0, e_j.reshape(x0.shape), mode, who).reshape(n))
        H = torch.stack(columns, dim=1)
    return H.reshape(x0.shape + x0.shape)

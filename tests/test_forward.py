"""gradlab.forward: dual numbers, JVPs and Hessian-vector products, against torch.func in float64.

Hypothesis settings: derandomize=True (the same cases on every run), deadline=None, a modest
max_examples.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from gradlab.forward import Dual, derivative, hessian, hvp, jvp, jvp_via_vjp

# torch.func's forward mode scripts its decompositions on first use, which warns inside torch itself.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)
F64 = torch.float64


def _t(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=F64)


def _torch_jvp(f, xs, vs):
    """torch.func.jvp on 0-d float64 tensors, returned as floats."""
    out, tangent = torch.func.jvp(f, tuple(map(_t, xs)), tuple(map(_t, vs)))
    return out.item(), tangent.item()


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)   # inf == inf, -inf != inf


def _assert_matches(dual_f, torch_f, xs, vs):
    out = dual_f(*(Dual(x, v) for x, v in zip(xs, vs)))
    value, tangent = _torch_jvp(torch_f, xs, vs)
    assert _close(out.primal, value), (out, value)
    assert _close(out.tangent, tangent), (out, tangent)


# (name, Dual function, torch function) of two arguments
BINARY = [
    ("a + b", lambda a, b: a + b, lambda a, b: a + b),
    ("a - b", lambda a, b: a - b, lambda a, b: a - b),
    ("a * b", lambda a, b: a * b, lambda a, b: a * b),
    ("a / b", lambda a, b: a / b, lambda a, b: a / b),
    ("a * a / b - b", lambda a, b: a * a / b - b, lambda a, b: a * a / b - b),
]
UNARY = [
    ("exp", lambda a: a.exp(), torch.exp),
    ("log", lambda a: a.log(), torch.log),
    ("sin", lambda a: a.sin(), torch.sin),
    ("cos", lambda a: a.cos(), torch.cos),
    ("tanh", lambda a: a.tanh(), torch.tanh),
    ("relu", lambda a: a.relu(), torch.relu),
    ("-a", lambda a: -a, lambda a: -a),
    ("2 - a", lambda a: 2 - a, lambda a: 2 - a),
    ("3 * a + 1", lambda a: 3 * a + 1, lambda a: 3 * a + 1),
    ("1 / a", lambda a: 1 / a, lambda a: 1 / a),
    ("a ** 3", lambda a: a ** 3, lambda a: a ** 3),
    ("a ** 0.5", lambda a: a ** 0.5, lambda a: a ** 0.5),
    ("a ** -2", lambda a: a ** -2, lambda a: a ** -2),
    ("2 ** a", lambda a: 2 ** a, lambda a: 2 ** a),
    ("composed", lambda a: (a.sin() * a.exp()) / (1 + a * a),
     lambda a: torch.sin(a) * torch.exp(a) / (1 + a * a)),
]
POINTS = [-2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 3.0]


@pytest.mark.parametrize("name,dual_f,torch_f", UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize("x", POINTS)
def test_unary_rules_match_torch_func_jvp(name, dual_f, torch_f, x):
    # Edge points included: log and sqrt of 0 and of negatives, 1/0 (inf and nan as PyTorch).
    _assert_matches(dual_f, torch_f, [x], [0.75])


@pytest.mark.parametrize("name,dual_f,torch_f", BINARY, ids=[b[0] for b in BINARY])
def test_binary_rules_match_torch_func_jvp(name, dual_f, torch_f):
    for a, b in [(1.5, -0.5), (-2.0, 3.0), (0.0, 2.0), (0.7, 0.7)]:
        _assert_matches(dual_f, torch_f, [a, b], [0.3, -1.2])


@pytest.mark.parametrize("a,b", [(1.7, 2.3), (2.0, -1.5), (0.5, 0.0), (0.0, 2.0), (-2.0, 3.0)])
def test_dual_exponent_matches_torch(a, b):
    # a ** b with both varying: b a^(b-1) da + a^b log(a) db.
    _assert_matches(lambda p, q: p ** q, lambda p, q: p ** q, [a, b], [0.4, -0.9])


def test_a_real_exponent_is_a_constant_and_a_dual_one_a_tensor_as_in_torch():
    # A real exponent has no log(a) term, so a negative base stays finite; a Dual exponent is a
    # tensor with a tangent, whose log(a) * 0 term is nan in torch.func.jvp as here.
    assert Dual(-2.0, 1.0) ** 3 == Dual(-8.0, 12.0)
    out = Dual(-2.0, 1.0) ** Dual(3.0)
    ref = _torch_jvp(lambda p, q: p ** q, [-2.0, 3.0], [1.0, 0.0])
    assert out.primal == ref[0] == -8.0 and math.isnan(out.tangent) and math.isnan(ref[1])


EDGES = [0.0, -0.0, -2.0, -0.5, 0.5, 2.0, 1e-320, -1e-310, 1e308, 710.0, -800.0,
         math.inf, -math.inf, math.nan]
EXPONENTS = [0.0, -0.0, 1.0, 2.0, 3.0, 0.5, -0.5, -1.0, -2.0, 2.5, -1.5, math.inf, -math.inf,
             math.nan]


@pytest.mark.parametrize("b", EXPONENTS)
def test_pow_at_edge_values_matches_torch_func_jvp(b):
    # 0, -0.0, subnormals, negative bases with real exponents, overflow, inf and nan: the same
    # value and tangent as torch.func.jvp, for a real exponent, a real base and a Dual exponent.
    for a in EDGES:
        for da in (1.0, 0.0, -0.5):
            _assert_matches(lambda p: p ** b, lambda p: p ** b, [a], [da])
            _assert_matches(lambda q: b ** q, lambda q: b ** q, [a], [da])
            for db in (1.0, 0.0):
                _assert_matches(lambda p, q: p ** q, lambda p, q: p ** q, [a, b], [da, db])


@pytest.mark.parametrize("c", [0.0, -0.0, 2.0, math.inf, math.nan])
def test_a_real_factor_or_divisor_is_a_constant_as_in_torch(c):
    for a in EDGES:
        _assert_matches(lambda p: p * c, lambda p: p * c, [a], [1.0])
        _assert_matches(lambda p: c * p, lambda p: c * p, [a], [1.0])
        _assert_matches(lambda p: p / c, lambda p: p / c, [a], [1.0])
        _assert_matches(lambda p: c / p, lambda p: c / p, [a], [1.0])
    assert (Dual(math.inf, 1.0) * 0).tangent == 0.0
    assert (Dual(1.0, 1.0) / 0).tangent == math.inf


@pytest.mark.parametrize("name,dual_f,torch_f", UNARY, ids=[u[0] for u in UNARY])
def test_unary_rules_at_edge_values_match_torch_func_jvp(name, dual_f, torch_f):
    for x in EDGES:
        for v in (1.0, 0.0):
            _assert_matches(dual_f, torch_f, [x], [v])


def test_relu_has_slope_zero_at_zero_like_torch():
    assert Dual(0.0, 1.0).relu() == Dual(0.0, 0.0)
    assert _torch_jvp(torch.relu, [0.0], [1.0]) == (0.0, 0.0)
    assert math.copysign(1, Dual(-0.0, 1.0).relu().primal) == -1     # relu(-0.0) = -0.0


# Moderate magnitudes (or exactly 0): near 1e-300, 1 / a and a ** -2 overflow, and whether the
# overflow shows as inf or nan in a tangent depends on the order of the float operations.
finite = st.floats(-5, 5, allow_nan=False).filter(lambda t: t == 0 or abs(t) > 1e-6)


@_SETTINGS
@given(a=finite, b=finite, da=finite, db=finite,
       op=st.sampled_from(range(len(BINARY))))
def test_binary_rules_property(a, b, da, db, op):
    _, dual_f, torch_f = BINARY[op]
    if "/" in BINARY[op][0] and abs(b) < 1e-3:
        b = 1.0                                   # keep quotients well conditioned
    _assert_matches(dual_f, torch_f, [a, b], [da, db])


@_SETTINGS
@given(x=finite, v=finite, op=st.sampled_from(range(len(UNARY))))
def test_unary_rules_property(x, v, op):
    _, dual_f, torch_f = UNARY[op]
    _assert_matches(dual_f, torch_f, [x], [v])


def test_reflected_operations_with_real_numbers():
    d = Dual(2.0, 1.0)
    assert 3 + d == Dual(5.0, 1.0) and 3 - d == Dual(1.0, -1.0)
    assert 3 * d == Dual(6.0, 3.0) and 4 / d == Dual(2.0, -1.0)
    assert d + 1 == Dual(3.0, 1.0) and +d is d


def test_derivative_of_a_composed_function():
    f = lambda x: (x.sin() * x.exp()) / (1 + x * x)  # noqa: E731
    value, slope = derivative(f, 0.7)
    ref = _torch_jvp(lambda t: torch.sin(t) * torch.exp(t) / (1 + t * t), [0.7], [1.0])
    assert _close(value, ref[0]) and _close(slope, ref[1])
    assert derivative(lambda x: 5.0, 1.0) == (5.0, 0.0)      # a constant function


def test_jvp_several_inputs_and_outputs_matches_torch_func():
    def f(x, y):
        return x * y.sin(), (x / y).exp()

    xs, vs = (0.8, -1.3), (0.5, 2.0)
    values, tangents = jvp(f, xs, vs)
    ref_v, ref_t = torch.func.jvp(lambda x, y: (x * torch.sin(y), torch.exp(x / y)),
                                  tuple(map(_t, xs)), tuple(map(_t, vs)))
    assert isinstance(values, tuple) and isinstance(tangents, tuple)
    for mine, ref in zip(values + tangents, ref_v + ref_t):
        assert _close(mine, ref.item())
    single = jvp(lambda x: x * x, [3.0], [1.0])
    assert single == ((9.0,), (6.0,))


# -- bad inputs: a clear error naming the argument ------------------------------------------

@pytest.mark.parametrize("bad,word", [("1", "str"), (torch.tensor(1.0), "Tensor"), (True, "bool"),
                                      (1 + 2j, "complex"), (None, "NoneType")])
def test_dual_refuses_anything_but_a_real_number(bad, word):
    with pytest.raises(TypeError, match=f"primal must be a real number.*{word}"):
        Dual(bad)
    with pytest.raises(TypeError, match=f"tangent must be a real number.*{word}"):
        Dual(1.0, bad)


def test_an_integer_too_large_for_a_float_is_named():
    with pytest.raises(OverflowError, match="primal is an integer too large for a float64"):
        Dual(10 ** 400)
    with pytest.raises(OverflowError, match="too large for a float64"):
        Dual(1.0) * 10 ** 400


def test_dual_refuses_a_nested_dual_and_bad_operands():
    with pytest.raises(TypeError, match="primal is a Dual"):
        Dual(Dual(1.0))
    with pytest.raises(TypeError, match=r"Dual \*: the other operand.*str"):
        Dual(1.0) * "2"
    with pytest.raises(TypeError, match=r"Dual \+: the other operand.*Tensor"):
        Dual(1.0) + torch.ones(1)


def test_derivative_and_jvp_errors_name_the_argument():
    with pytest.raises(TypeError, match="derivative: f must be a function"):
        derivative(3.0, 1.0)
    with pytest.raises(TypeError, match="derivative: x must be a real number"):
        derivative(lambda x: x, "1")
    with pytest.raises(TypeError, match="tuple of 2.*jvp"):
        derivative(lambda x: (x, x), 1.0)
    with pytest.raises(TypeError, match="derivative: f's output is a str"):
        derivative(lambda x: "x", 1.0)
    with pytest.raises(ValueError, match="xs has 2 numbers but vs has 1"):
        jvp(lambda a, b: a * b, [1.0, 2.0], [1.0])
    with pytest.raises(TypeError, match=r"jvp: vs\[1\] must be a real number"):
        jvp(lambda a, b: a * b, [1.0, 2.0], [1.0, "x"])
    with pytest.raises(TypeError, match="jvp: xs must be a list or tuple"):
        jvp(lambda a: a, torch.ones(1), [1.0])
    with pytest.raises(TypeError, match="jvp: output 1 of f is a list"):
        jvp(lambda a: (a, [a]), [1.0], [1.0])


# -- tensors: jvp_via_vjp, hvp, hessian -----------------------------------------------------

def _case(seed: int):
    g = torch.Generator().manual_seed(seed)
    N, D, M = (int(s) for s in torch.randint(2, 6, (3,), generator=g))
    W = torch.randn(D, M, generator=g, dtype=F64)
    x = torch.randn(N, D, generator=g, dtype=F64)
    v = torch.randn(N, D, generator=g, dtype=F64)
    return W, x, v


@pytest.mark.parametrize("seed", range(4))
def test_jvp_via_vjp_matches_torch_func_jvp(seed):
    W, x, v = _case(seed)
    f = lambda t: torch.tanh(t @ W) * t.sum(1, keepdim=True)  # noqa: E731
    x_before = x.clone()
    y, jv = jvp_via_vjp(f, x, v)
    y_ref, jv_ref = torch.func.jvp(f, (x,), (v,))
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(jv, jv_ref)
    assert jv.shape == y.shape
    assert torch.equal(x, x_before) and x.grad is None and not y.requires_grad


def test_jvp_via_vjp_of_a_constant_and_of_a_linear_function():
    x, v = torch.randn(3, dtype=F64), torch.randn(3, dtype=F64)
    y, jv = jvp_via_vjp(lambda t: torch.ones(2, dtype=F64), x, v)
    assert torch.equal(jv, torch.zeros(2, dtype=F64))
    A = torch.randn(4, 3, dtype=F64)
    _, jv = jvp_via_vjp(lambda t: A @ t, x, v)
    torch.testing.assert_close(jv, A @ v)


def _loss(W):
    return lambda t: torch.nn.functional.softplus(t @ W).sum() + (t ** 3).sum() / 3


@pytest.mark.parametrize("mode", ["forward-over-reverse", "reverse-over-reverse"])
@pytest.mark.parametrize("seed", range(4))
def test_hvp_matches_torch_func_hessian(mode, seed):
    W, x, v = _case(seed)
    f = _loss(W)
    n = x.numel()
    H = torch.func.hessian(f)(x).reshape(n, n)
    hv = hvp(f, x, v, mode=mode)
    assert hv.shape == x.shape
    torch.testing.assert_close(hv, (H @ v.reshape(n)).reshape(x.shape))
    assert x.grad is None


@pytest.mark.parametrize("mode", ["forward-over-reverse", "reverse-over-reverse"])
def test_hessian_from_hvps_matches_torch_func_hessian(mode):
    W, x, _ = _case(5)
    f = _loss(W)
    H = hessian(f, x, mode=mode)
    assert H.shape == x.shape * 2
    torch.testing.assert_close(H, torch.func.hessian(f)(x))


@pytest.mark.parametrize("mode", ["forward-over-reverse", "reverse-over-reverse"])
def test_hvp_of_a_linear_function_is_zero(mode):
    x, v = torch.randn(4, dtype=F64), torch.randn(4, dtype=F64)
    assert torch.equal(hvp(lambda t: 2 * t.sum(), x, v, mode=mode), torch.zeros(4, dtype=F64))


def test_tensor_functions_refuse_bad_inputs_by_name():
    x = torch.randn(3, dtype=F64)
    with pytest.raises(ValueError, match=r"hvp: f\(x\) must be a scalar.*\(3,\)"):
        hvp(torch.sin, x, x)
    with pytest.raises(ValueError, match=r"hvp: f\(x\) must be a scalar"):
        hvp(torch.sin, x, x, mode="reverse-over-reverse")
    with pytest.raises(ValueError, match=r"hessian: f\(x\) must be a scalar"):
        hessian(torch.sin, x)
    with pytest.raises(ValueError, match="hvp: mode must be one of.*'sideways'"):
        hvp(lambda t: t.sum(), x, x, mode="sideways")
    with pytest.raises(ValueError, match=r"jvp_via_vjp: v has shape \(2,\) but x has shape \(3,\)"):
        jvp_via_vjp(torch.sin, x, torch.ones(2, dtype=F64))
    with pytest.raises(TypeError, match="hvp: x has dtype torch.int64"):
        hvp(lambda t: t.sum(), torch.arange(3), x)
    with pytest.raises(TypeError, match="jvp_via_vjp: v must be a torch.Tensor"):
        jvp_via_vjp(torch.sin, x, [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="jvp_via_vjp: f must be a function"):
        jvp_via_vjp(x, x, x)
    with pytest.raises(TypeError, match=r"jvp_via_vjp: f\(x\) must be a floating-point tensor.*float"):
        jvp_via_vjp(lambda t: t.sum().item(), x, x)
    with pytest.raises(ValueError, match="hessian: x has no elements"):
        hessian(lambda t: t.sum(), torch.zeros(0, dtype=F64))


def test_the_module_is_on_gradlabs_module_map():
    import gradlab
    import gradlab.forward as forward

    assert "``gradlab.forward``" in gradlab.__doc__
    for name in forward.__all__:
        assert hasattr(forward, name), name


# -- edge cases found in review: each once silently wrong or unclear -------------------------------

def _sigmoid_function(backward_kind: str):
    """A sigmoid autograd.Function whose backward is differentiable, once-only, or detaches dout."""
    from torch.autograd.function import once_differentiable

    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        if backward_kind == "detached dout":
            grad_output = grad_output.detach()
        return grad_output * y * (1 - y)

    if backward_kind == "once":
        backward = once_differentiable(backward)
    return type("Sig", (torch.autograd.Function,), {
        "forward": staticmethod(lambda x: torch.sigmoid(x)),
        "setup_context": staticmethod(lambda ctx, inputs, output: ctx.save_for_backward(output)),
        "backward": staticmethod(backward)})


def test_a_backward_that_cannot_be_differentiated_again_raises_instead_of_zeros():
    # torch.autograd.functional.jvp and .hvp return zeros here; torch.func raises.
    x, v = torch.randn(2, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    good = _sigmoid_function("differentiable")
    torch.testing.assert_close(jvp_via_vjp(good.apply, x, v)[1],
                               torch.func.jvp(torch.sigmoid, (x,), (v,))[1])
    once, detached = _sigmoid_function("once"), _sigmoid_function("detached dout")
    with pytest.raises(RuntimeError, match="jvp_via_vjp: .*@once_differentiable"):
        jvp_via_vjp(once.apply, x, v)
    with pytest.raises(RuntimeError, match=r"hvp: .*@once_differentiable"):
        hvp(lambda t: (once.apply(t) ** 2).sum(), x, v, mode="reverse-over-reverse")
    with pytest.raises(RuntimeError, match=r"jvp_via_vjp: <u, J v> differs from <J\^T u, v>"):
        jvp_via_vjp(detached.apply, x, v)
    with pytest.raises(NotImplementedError, match="(?s)jvp function.*reverse-over-reverse"):
        hvp(lambda t: good.apply(t).sum(), x, v)


@pytest.mark.parametrize("mode", ["forward-over-reverse", "reverse-over-reverse"])
def test_inference_mode_does_not_silence_the_gradients(mode):
    x, v = torch.randn(2, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    with torch.inference_mode():
        xi, vi = x.clone(), v.clone()
        hv = hvp(lambda t: (t ** 3).sum(), xi, vi, mode=mode)
        H = hessian(lambda t: (t ** 3).sum(), xi, mode=mode)
        _, jv = jvp_via_vjp(torch.sin, xi, vi)
    torch.testing.assert_close(hv, 6 * x * v)
    torch.testing.assert_close(H, torch.diag(6 * x))
    torch.testing.assert_close(jv, torch.cos(x) * v)


def test_a_zero_dim_input_an_in_place_f_and_a_leak():
    s = torch.tensor(0.7, dtype=F64)
    H = hessian(lambda t: t ** 3, s)
    assert H.shape == () and torch.allclose(H, torch.func.hessian(lambda t: t ** 3)(s))
    x, v = torch.randn(2, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    _, jv = jvp_via_vjp(lambda t: t.mul_(2), x, v)                  # f works in place
    torch.testing.assert_close(jv, 2 * v)
    leak = lambda t: torch.from_numpy(t.detach().numpy() * 2)       # noqa: E731
    with pytest.raises(ValueError, match="jvp_via_vjp: f\\(x\\) changes when x moves along v"):
        jvp_via_vjp(leak, x, v)
    with pytest.raises(ValueError, match="hvp: f\\(x\\) changes"):
        hvp(lambda t: leak(t).pow(2).sum(), x, v, mode="reverse-over-reverse")
    # a truly constant f is still fine
    _, zero = jvp_via_vjp(lambda t: torch.ones(2, dtype=F64), x, v)
    assert torch.equal(zero, torch.zeros(2, dtype=F64))

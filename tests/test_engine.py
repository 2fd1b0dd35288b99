"""gradlab.engine: every operation's gradient against PyTorch autograd, and the engine's rules."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from gradlab.engine import Tensor, Value, cross_entropy, topological_order, unbroadcast

F64 = torch.float64


def rand(*shape, seed=0, positive=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(shape), generator=g, dtype=F64)
    return x.abs() + 0.5 if positive else x


def grads_both(fn, *arrays, seed_grad=None):
    """fn applied to engine Tensors and to torch leaves: (engine out, torch out, engine grads, torch grads)."""
    mine = [Tensor(a.clone()) for a in arrays]
    ref = [a.clone().requires_grad_() for a in arrays]
    out_m, out_r = fn(*mine), fn(*ref)
    if seed_grad is None:
        out_m.backward()
        out_r.backward()
    else:
        out_m.backward(seed_grad)
        out_r.backward(seed_grad)
    return out_m, out_r, [m.grad for m in mine], [r.grad for r in ref]


def assert_close(a, b):
    assert a is not None and b is not None
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# Value


def micrograd_readme(V):
    a, b = V(-4.0), V(2.0)
    c = a + b
    d = a * b + b ** 3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + relu(b + a)
    d += 3 * d + relu(b - a)
    e = c - d
    f = e ** 2
    g = f / 2.0
    g += 10.0 / f
    return a, b, g


def relu(x):
    return x.relu() if isinstance(x, Value) else torch.relu(x)


def test_value_reproduces_the_micrograd_readme_example_and_agrees_with_torch():
    a, b, g = micrograd_readme(Value)
    g.backward()
    assert f"{g.data:.4f}" == "24.7041"
    assert (f"{a.grad:.4f}", f"{b.grad:.4f}") == ("138.8338", "645.5773")
    ta, tb, tg = micrograd_readme(lambda v: torch.tensor(v, dtype=F64, requires_grad=True))
    tg.backward()
    assert math.isclose(g.data, tg.item(), rel_tol=1e-12)
    assert math.isclose(a.grad, ta.grad.item(), rel_tol=1e-12)
    assert math.isclose(b.grad, tb.grad.item(), rel_tol=1e-12)


@pytest.mark.parametrize("name, fn", [
    ("add", lambda x, y: x + y), ("sub", lambda x, y: x - y), ("mul", lambda x, y: x * y),
    ("div", lambda x, y: x / y), ("pow", lambda x, y: x ** 3 + y ** -1.5),
    ("radd", lambda x, y: 2.0 + x * y), ("rsub", lambda x, y: 2.0 - x * y),
    ("rmul", lambda x, y: 3.0 * x + y), ("rdiv", lambda x, y: 10.0 / (x * y)),
    ("neg", lambda x, y: -x * y), ("tanh", lambda x, y: (x * y).tanh()),
    ("exp", lambda x, y: (x - y).exp()), ("log", lambda x, y: (x * y).log()),
    ("relu", lambda x, y: (x - y).relu() + (y - x).relu() * x),
    ("reuse", lambda x, y: x * x + x / y + x),
])
def test_value_ops_match_torch(name, fn):
    x, y = Value(1.3), Value(0.7)
    fn(x, y).backward()
    tx, ty = (torch.tensor(v, dtype=F64, requires_grad=True) for v in (1.3, 0.7))
    fn(tx, ty).backward()
    assert math.isclose(x.grad, tx.grad.item(), rel_tol=1e-12, abs_tol=1e-15), name
    assert math.isclose(y.grad, ty.grad.item(), rel_tol=1e-12, abs_tol=1e-15), name


def test_value_reused_node_accumulates():
    a = Value(3.0)
    (a + a).backward()
    assert a.grad == 2.0


def test_value_backward_twice_adds_the_same_gradient_to_leaves_and_zero_grad_resets():
    a, b = Value(2.0), Value(-3.0)
    out = ((a * b).tanh() + a) * b
    out.backward()
    first = (a.grad, b.grad)
    out.backward()
    assert (a.grad, b.grad) == (2 * first[0], 2 * first[1])
    a.zero_grad()
    b.zero_grad()
    out.backward()
    assert (a.grad, b.grad) == first


def test_value_topological_order_puts_inputs_first_and_survives_deep_graphs():
    x = Value(1.0)
    y = x
    for _ in range(5000):  # deeper than the default recursion limit
        y = y * 1.0
    order = topological_order(y)
    assert order[-1] is y and len(order) == 10001  # 5000 products, 5000 constants, x
    position = {id(n): i for i, n in enumerate(order)}
    assert all(position[id(i)] < position[id(n)] for n in order for i in n._inputs)
    y.backward()
    assert x.grad == 1.0


@pytest.mark.parametrize("bad", ["3", None, True, [1.0], torch.tensor(1.0)])
def test_value_rejects_non_numbers(bad):
    with pytest.raises(TypeError, match="real number"):
        Value(bad)


# --------------------------------------------------------------------------------------------------
# Tensor: each operation against torch


BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}
UNARY = {
    "exp": lambda a: a.exp(), "log": lambda a: a.log(), "tanh": lambda a: a.tanh(),
    "relu": lambda a: a.relu(), "pow2": lambda a: a ** 2, "pow3": lambda a: a ** 3,
    "pow-0.5": lambda a: a ** -0.5, "neg": lambda a: -a,
    "radd": lambda a: 2.0 + a, "rsub": lambda a: 2.0 - a, "rmul": lambda a: 3.0 * a,
    "rdiv": lambda a: 10.0 / a, "add_scalar": lambda a: a + 1.5, "div_scalar": lambda a: a / 4.0,
}
SHAPE_PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((), (2, 3)),
               ((5,), ())]


@pytest.mark.parametrize("op", list(BINARY))
@pytest.mark.parametrize("sa, sb", SHAPE_PAIRS)
def test_tensor_binary_ops_broadcast_and_unbroadcast_like_torch(op, sa, sb):
    fn = BINARY[op]
    a, b = rand(*sa, seed=1), rand(*sb, seed=2, positive=True)
    out_m, out_r, gm, gr = grads_both(lambda x, y: fn(x, y).sum(), a, b)
    assert_close(out_m.data, out_r.detach())
    for m, r in zip(gm, gr):
        assert_close(m, r)


@pytest.mark.parametrize("op", list(UNARY))
def test_tensor_unary_ops_match_torch(op):
    a = rand(3, 4, seed=3, positive=op in ("log", "pow-0.5"))
    a[0, 0] = -0.25 if op not in ("log", "pow-0.5") else a[0, 0]
    seed = rand(3, 4, seed=4)
    out_m, out_r, gm, gr = grads_both(UNARY[op], a, seed_grad=seed)
    assert_close(out_m.data, out_r.detach())
    assert_close(gm[0], gr[0])


@pytest.mark.parametrize("sa, sb", [((4, 3), (3, 5)), ((3,), (3, 5)), ((4, 3), (3,)), ((3,), (3,)),
                                    ((2, 4, 3), (3, 5)), ((4, 3), (2, 3, 5)), ((2, 1, 4, 3), (3, 3, 2))])
def test_tensor_matmul_matches_torch(sa, sb):
    a, b = rand(*sa, seed=5), rand(*sb, seed=6)
    out_m, out_r, gm, gr = grads_both(lambda x, y: ((x @ y) ** 2).sum(), a, b)
    assert_close(out_m.data, out_r.detach())
    for m, r in zip(gm, gr):
        assert_close(m, r)


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (2, 0), (1,)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_tensor_reductions_match_torch(axis, keepdims, reduce):
    a = rand(2, 3, 4, seed=7)

    def fn(x):
        if isinstance(x, Tensor):
            r = getattr(x, reduce)(axis, keepdims) if axis is not None else getattr(x, reduce)()
        else:
            r = getattr(x, reduce)(axis, keepdim=keepdims) if axis is not None else getattr(x, reduce)()
        return (r * r).sum()

    out_m, out_r, gm, gr = grads_both(fn, a)
    assert_close(out_m.data, out_r.detach())
    assert_close(gm[0], gr[0])


def test_tensor_zero_dim_operands():
    a, b = rand(seed=8), rand(3, seed=9)
    out_m, out_r, gm, gr = grads_both(lambda x, y: ((x * y).tanh() + x.exp() * y).mean() * x, a, b)
    assert out_m.data.shape == () and gm[0].shape == ()
    assert_close(out_m.data, out_r.detach())
    for m, r in zip(gm, gr):
        assert_close(m, r)


def test_cross_entropy_matches_torch_and_survives_huge_logits():
    logits = rand(6, 4, seed=10) * 1000.0
    labels = torch.tensor([0, 3, 1, 2, 3, 0])
    out_m, out_r, gm, gr = grads_both(lambda z: (cross_entropy(z, labels) if isinstance(z, Tensor)
                                                 else torch.nn.functional.cross_entropy(z, labels)),
                                      logits)
    assert torch.isfinite(out_m.data)
    assert_close(out_m.data, out_r.detach())
    assert_close(gm[0], gr[0])


def test_cross_entropy_times_a_scalar_scales_its_gradient():
    logits, labels = rand(5, 3, seed=11), torch.tensor([0, 1, 2, 1, 0])
    out_m, out_r, gm, gr = grads_both(
        lambda z: 3.0 * (cross_entropy(z, labels) if isinstance(z, Tensor)
                         else torch.nn.functional.cross_entropy(z, labels)), logits)
    assert_close(gm[0], gr[0])


def test_the_mlp_step_matches_torch_in_float32():
    g = torch.Generator().manual_seed(12)
    x = torch.randn(64, 2, generator=g)
    labels = torch.randint(0, 3, (64,), generator=g)
    params = [torch.randn(2, 16, generator=g) * 0.7, torch.zeros(16), torch.randn(16, 3, generator=g) * 0.3,
              torch.zeros(3)]

    def loss_fn(W1, b1, W2, b2, X, ce):
        logits = (X @ W1 + b1).relu() @ W2 + b2
        return ce(logits, labels) + 1e-4 * ((W1 ** 2).sum() + (W2 ** 2).sum())

    mine = [Tensor(p) for p in params]
    loss_fn(*mine, Tensor(x, requires_grad=False), cross_entropy).backward()
    ref = [p.clone().requires_grad_() for p in params]
    loss_fn(*ref, x, torch.nn.functional.cross_entropy).backward()
    for m, r in zip(mine, ref):
        torch.testing.assert_close(m.grad, r.grad, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Tensor: the engine's rules


def test_reused_tensor_accumulates_and_backward_twice_doubles_leaves_only():
    a = Tensor(rand(3, seed=13))
    h = a * a
    out = (h + h + a).sum()
    out.backward()
    first = a.grad.clone()
    torch.testing.assert_close(first, 4 * a.data + 1)
    out.backward()
    torch.testing.assert_close(a.grad, 2 * first)
    torch.testing.assert_close(h.grad, torch.full((3,), 2.0, dtype=F64))  # interior: reset, not doubled
    a.zero_grad()
    assert a.grad is None


def test_inputs_without_requires_grad_get_no_grad():
    x = Tensor(rand(4, 3, seed=14), requires_grad=False)
    W = Tensor(rand(3, 2, seed=15))
    (x @ W).sum().backward()
    assert x.grad is None and W.grad is not None


def test_unbroadcast_sums_over_prepended_and_size_one_dims():
    g = torch.ones(2, 3, 4, dtype=F64)
    assert unbroadcast(g, torch.Size([3, 1])).tolist() == [[8.0]] * 3
    assert unbroadcast(g, torch.Size([])).item() == 24.0
    assert unbroadcast(g, g.shape) is g


# --------------------------------------------------------------------------------------------------
# bad input: clear errors


def test_non_broadcastable_shapes_raise_a_clear_error():
    a, b = Tensor(rand(3, 4)), Tensor(rand(3))
    for op in (lambda: a + b, lambda: a * b, lambda: a - b, lambda: a / b):
        with pytest.raises(ValueError, match=r"shapes \(3, 4\) and \(3,\) do not broadcast"):
            op()
    with pytest.raises(ValueError, match=r"@: shapes \(3, 4\) and \(3,\) do not match"):
        a @ b


def test_non_scalar_backward_without_a_seed_raises():
    out = Tensor(rand(2, 3)) * 2.0
    with pytest.raises(RuntimeError, match=r"needs a one-element output, not shape \(2, 3\)"):
        out.backward()
    with pytest.raises(ValueError, match="grad has shape"):
        out.backward(torch.ones(3, 2))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_dtypes_are_rejected(dtype):
    with pytest.raises(TypeError, match=r"gradients need floating-point data.*\.float\(\)"):
        Tensor(torch.zeros(3, dtype=dtype))


def test_mixed_dtypes_are_rejected():
    with pytest.raises(TypeError, match="dtypes torch.float32 and torch.float64 differ"):
        Tensor(torch.ones(2)) + Tensor(torch.ones(2, dtype=F64))


def test_backward_on_a_constant_graph_raises():
    out = Tensor(rand(2), requires_grad=False).sum()
    with pytest.raises(RuntimeError, match="nothing to differentiate"):
        out.backward()


# --------------------------------------------------------------------------------------------------
# property test: random graphs over random broadcastable shapes, with reused nodes


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast: drop leading dims of either, set sizes to 1 at random."""
    full = draw(st.lists(st.integers(1, 4), min_size=0, max_size=3))
    shapes = []
    for _ in range(2):
        keep = draw(st.integers(0, len(full)))
        shape = [n if not draw(st.booleans()) else 1 for n in full[len(full) - keep:]]
        shapes.append(tuple(shape))
    return shapes


def ndim(v):
    return v.data.dim() if isinstance(v, Tensor) else v.dim()


OPS = ["add", "sub", "mul", "div", "tanh", "exp", "relu", "pow2", "sum0", "mean"]


@settings(max_examples=150, derandomize=True, deadline=None)
@given(shapes=broadcast_pair(), ops=st.lists(st.sampled_from(OPS), min_size=1, max_size=6),
       seed=st.integers(0, 10_000))
def test_random_graphs_match_torch(shapes, ops, seed):
    a, b = rand(*shapes[0], seed=seed), rand(*shapes[1], seed=seed + 1, positive=True)

    def build(x, y):
        nodes = [x, y]
        for i, op in enumerate(ops):
            u, v = nodes[i % len(nodes)], nodes[-1]  # v is reused by the next op too
            if op in BINARY:
                w = BINARY[op](u, v if op != "div" else (v * v + 1.0))
            elif op == "tanh":
                w = v.tanh()
            elif op == "exp":
                w = (v * 0.3).tanh().exp()
            elif op == "relu":
                w = v.relu() + u
            elif op == "pow2":
                w = v ** 2
            elif op == "sum0":
                w = v.sum(0) if ndim(v) else v
            else:
                w = v.mean()
            nodes.append(w)
        return sum((n.sum() for n in nodes[2:]), nodes[0].sum() + nodes[1].sum() * 0.5)

    out_m, out_r, gm, gr = grads_both(build, a, b)
    assert_close(out_m.data, out_r.detach())
    for m, r in zip(gm, gr):
        assert_close(m, r)


# --------------------------------------------------------------------------------------------------
# review fixes: leaves own their gradient, a ** 0, axis=(), a torch.Tensor operand


def test_leaf_grads_are_their_own_tensors_and_can_be_updated_in_place():
    x, y, s = Tensor(rand(3, seed=16)), Tensor(rand(3, seed=17)), Tensor(rand(2, 3, seed=18))
    (x + y).sum().backward()  # the rule of + hands one tensor to both inputs
    assert x.grad is not y.grad
    x.grad.mul_(0.5)  # e.g. gradient clipping, in place
    torch.testing.assert_close(y.grad, torch.ones(3, dtype=F64))
    s.sum().backward()  # the rule of sum hands back an expanded view (stride 0)
    s.grad.clamp_(max=0.5)
    torch.testing.assert_close(s.grad, torch.full((2, 3), 0.5, dtype=F64))
    seed = torch.ones(3, dtype=F64)
    x.zero_grad()
    x.backward(seed)  # a leaf as the output: its grad is not the caller's seed tensor
    seed.zero_()
    torch.testing.assert_close(x.grad, torch.ones(3, dtype=F64))


def test_power_zero_has_gradient_zero_also_at_zero():
    a = torch.tensor([0.0, 2.0], dtype=F64)
    out_m, out_r, gm, gr = grads_both(lambda t: (t ** 0).sum(), a)
    assert_close(out_m.data, out_r.detach())
    assert_close(gm[0], gr[0])
    v = Value(0.0)
    (v ** 0).backward()
    assert v.grad == 0.0


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_empty_axis_tuple_is_refused(reduce):
    with pytest.raises(ValueError, match=r"axis=\(\) is ambiguous"):
        getattr(Tensor(rand(2, 3)), reduce)(())


def test_a_torch_tensor_operand_gets_a_clear_error():
    a = Tensor(rand(2, 2))
    for op in (lambda: a + torch.ones(2, dtype=F64), lambda: torch.ones(2, dtype=F64) * a,
               lambda: a @ torch.ones(2, 2, dtype=F64)):
        with pytest.raises(TypeError, match=r"got a torch\.Tensor; wrap it first"):
            op()

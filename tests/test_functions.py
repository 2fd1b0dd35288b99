"""gradlab.functions: every Function against torch's own operation, gradcheck, gradgradcheck."""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from gradlab.functions import Add, Affine, Exp, LogSumExp, MatMul, Maximum, Mul, ReLU, Sigmoid


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _rand(g, *shape, away_from_zero=False):
    t = torch.randn(shape, generator=g, dtype=torch.float64)
    if away_from_zero:   # keep ReLU/max inputs off their kinks, where finite differences average slopes
        t = t + 0.2 * torch.sign(t) + (t == 0) * 0.5
    return t


# (Function, reference op, input shapes, extra non-tensor args)
CASES = [
    (Add, torch.add, [(5,), (5,)], ()),
    (Add, torch.add, [(3, 4), (4,)], ()),
    (Add, torch.add, [(3, 1), (1, 4)], ()),
    (Add, torch.add, [(2, 3, 4), ()], ()),
    (Mul, torch.mul, [(5,), (5,)], ()),
    (Mul, torch.mul, [(3, 4), (3, 1)], ()),
    (Mul, torch.mul, [(4,), (2, 3, 4)], ()),
    (Exp, torch.exp, [(7,)], ()),
    (Exp, torch.exp, [(2, 3, 2)], ()),
    (ReLU, torch.relu, [(9,)], ()),
    (ReLU, torch.relu, [(3, 4)], ()),
    (Sigmoid, torch.sigmoid, [(6,)], ()),
    (Sigmoid, torch.sigmoid, [(2, 5)], ()),
    (Maximum, torch.maximum, [(6,), (6,)], ()),
    (Maximum, torch.maximum, [(3, 4), (4,)], ()),
    (MatMul, torch.matmul, [(3, 4), (4, 2)], ()),
    (MatMul, torch.matmul, [(2, 3, 4), (4, 5)], ()),
    (MatMul, torch.matmul, [(3, 4), (2, 4, 5)], ()),
    (MatMul, torch.matmul, [(2, 1, 3, 2), (3, 2, 4)], ()),
    (Affine, lambda x, W, b: x @ W + b, [(5, 3), (3, 2), (2,)], ()),
    (Affine, lambda x, W, b: x @ W + b, [(1, 4), (4, 1), (1,)], ()),
    (LogSumExp, torch.logsumexp, [(6,)], (0,)),
    (LogSumExp, torch.logsumexp, [(3, 4)], (1,)),
    (LogSumExp, torch.logsumexp, [(3, 4)], (-2,)),
    (LogSumExp, torch.logsumexp, [(2, 3, 4)], (1,)),
]
IDS = [f"{c[0].__name__}-{'x'.join(str(s) for s in c[2])}-{c[3]}" for c in CASES]


def _inputs(shapes, seed=0):
    g = _gen(seed)
    return [_rand(g, *s, away_from_zero=True).requires_grad_() for s in shapes]


@pytest.mark.parametrize("fn, ref, shapes, extra", CASES, ids=IDS)
def test_forward_and_backward_match_torch(fn, ref, shapes, extra):
    inputs = _inputs(shapes)
    out = fn.apply(*inputs, *extra)
    expected = ref(*inputs, *extra)
    torch.testing.assert_close(out, expected)
    upstream = torch.randn(expected.shape, generator=_gen(1), dtype=torch.float64)
    mine = torch.autograd.grad(out, inputs, upstream)
    theirs = torch.autograd.grad(expected, inputs, upstream)
    for m, t, x in zip(mine, theirs, inputs):
        assert m.shape == x.shape   # broadcast gradients are summed back to the input's shape
        torch.testing.assert_close(m, t)


@pytest.mark.parametrize("fn, ref, shapes, extra", CASES, ids=IDS)
def test_gradcheck_and_gradgradcheck(fn, ref, shapes, extra):
    inputs = _inputs(shapes, seed=2)
    call = lambda *xs: fn.apply(*xs, *extra)  # noqa: E731
    assert gradcheck(call, inputs)
    assert gradgradcheck(call, inputs)


def test_float32_inputs_keep_their_dtype():
    g = _gen(3)
    x = torch.randn(3, 4, generator=g, requires_grad=True)
    W = torch.randn(4, 2, generator=g, requires_grad=True)
    b = torch.randn(2, generator=g, requires_grad=True)
    y = Affine.apply(x, W, b)
    assert y.dtype == torch.float32
    y.sum().backward()
    assert x.grad.dtype == W.grad.dtype == b.grad.dtype == torch.float32
    torch.testing.assert_close(b.grad, torch.full((2,), 3.0))   # db sums over the 3 rows


def test_backward_returns_none_for_inputs_that_need_no_gradient():
    g = _gen(4)
    a = torch.randn(3, generator=g, requires_grad=True)
    b = torch.randn(3, generator=g)   # data
    for fn in (Add, Mul, Maximum):
        a.grad = None
        out = fn.apply(a, b)
        assert out.grad_fn is not None
        out.sum().backward()
        assert a.grad is not None and b.grad is None
    x = torch.randn(2, 3, generator=g)
    W = torch.randn(3, 2, generator=g, requires_grad=True)
    bias = torch.randn(2, generator=g)
    Affine.apply(x, W, bias).sum().backward()
    torch.testing.assert_close(W.grad, x.T @ torch.ones(2, 2))
    assert bias.grad is None


def test_upstream_gradient_is_not_modified():
    g = _gen(5)
    x = torch.randn(6, generator=g, requires_grad=True)
    other = torch.randn(6, generator=g, requires_grad=True)
    for fn, args in ((ReLU, (x,)), (Sigmoid, (x,)), (Exp, (x,)), (Mul, (x, other)), (Maximum, (x, other))):
        upstream = torch.linspace(-1.0, 1.0, 6)
        kept = upstream.clone()
        torch.autograd.grad(fn.apply(*args), args, upstream)
        assert torch.equal(upstream, kept), fn.__name__


def test_shared_upstream_gradient_reaches_both_branches():
    # s = 3x + relu(x): the add passes one gradient tensor to both branches; the ReLU branch must not
    # change it for the other one. (A backward that wrote into grad_output would give 0 below.)
    x = torch.tensor([1.0, -2.0, 0.5, -0.5], requires_grad=True)
    m = 3 * x
    s = m + ReLU.apply(x)
    s.backward(torch.ones(4))
    torch.testing.assert_close(x.grad, torch.tensor([4.0, 3.0, 4.0, 3.0]))


def test_relu_derivative_at_zero_is_zero_like_torch():
    x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    ReLU.apply(x).sum().backward()
    mine = x.grad.clone()
    x.grad = None
    torch.relu(x).sum().backward()
    torch.testing.assert_close(mine, x.grad)
    torch.testing.assert_close(mine, torch.tensor([0.0, 0.0, 1.0]))


def test_maximum_splits_ties_in_halves_like_torch():
    a = torch.tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    b = torch.tensor([2.0, 2.0, 1.0], requires_grad=True)   # broadcast over the 2 rows
    upstream = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mine = torch.autograd.grad(Maximum.apply(a, b), (a, b), upstream)
    theirs = torch.autograd.grad(torch.maximum(a, b), (a, b), upstream)
    for m, t in zip(mine, theirs):
        torch.testing.assert_close(m, t)
    torch.testing.assert_close(mine[0], torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.5, 0.0]]))


def test_sigmoid_saves_its_output():
    x = torch.tensor([0.3, -1.2], requires_grad=True)
    y = Sigmoid.apply(x)
    (saved,) = y.grad_fn.saved_tensors
    assert saved.data_ptr() == y.data_ptr()


def test_second_derivatives_match_torch():
    x = torch.linspace(-2.0, 2.0, 5, dtype=torch.float64, requires_grad=True)
    for fn, ref in ((Sigmoid, torch.sigmoid), (Exp, torch.exp)):
        (d1,) = torch.autograd.grad(fn.apply(x).sum(), x, create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), x)
        (r1,) = torch.autograd.grad(ref(x).sum(), x, create_graph=True)
        (r2,) = torch.autograd.grad(r1.sum(), x)
        torch.testing.assert_close(d2, r2)


def test_logsumexp_is_stable_for_large_and_masked_inputs():
    x = torch.tensor([[1e4, 1e4 - 1.0, -torch.inf], [-3e4, -3e4, -3e4]], dtype=torch.float64, requires_grad=True)
    out = LogSumExp.apply(x, 1)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.logsumexp(x, 1))
    (mine,) = torch.autograd.grad(out.sum(), x)
    (theirs,) = torch.autograd.grad(torch.logsumexp(x, 1).sum(), x)
    torch.testing.assert_close(mine, theirs)
    assert mine[0, 2] == 0   # a masked (-inf) entry gets no gradient
    torch.testing.assert_close(mine.sum(1), torch.ones(2, dtype=torch.float64))   # softmax rows sum to 1


def test_logsumexp_all_minus_inf_gives_minus_inf_like_torch():
    x = torch.full((2, 3), -torch.inf)
    torch.testing.assert_close(LogSumExp.apply(x, 1), torch.logsumexp(x, 1))


def test_works_inside_torch_func_transforms():
    x = torch.tensor([0.5, -1.0, 2.0])
    grad = torch.func.grad(lambda t: Mul.apply(Sigmoid.apply(t), t).sum())(x)
    expected = torch.func.grad(lambda t: (torch.sigmoid(t) * t).sum())(x)
    torch.testing.assert_close(grad, expected)


# ---- errors -------------------------------------------------------------------------------------

def test_non_tensor_input_is_rejected():
    with pytest.raises(TypeError, match=r"Mul: b must be a torch.Tensor, got float.*torch.tensor"):
        Mul.apply(torch.ones(2), 2.0)
    with pytest.raises(TypeError, match=r"ReLU: x must be a torch.Tensor, got list"):
        ReLU.apply([1.0, -1.0])


def test_integer_input_is_rejected():
    with pytest.raises(TypeError, match=r"Exp: x has dtype torch.int64.*floating-point"):
        Exp.apply(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match=r"Add: a has dtype torch.int64"):
        Add.apply(torch.tensor([1, 2]), torch.ones(2))


@pytest.mark.parametrize("fn", [Add, Mul, Maximum])
def test_shapes_that_do_not_broadcast_are_rejected(fn):
    with pytest.raises(ValueError, match=rf"{fn.__name__}: a has shape \(3,\) and b has shape \(4,\), which do not broadcast"):
        fn.apply(torch.ones(3), torch.ones(4))


def test_matmul_needs_matrices():
    with pytest.raises(ValueError, match=r"MatMul: a has shape \(3,\), but both inputs need at least 2 dimensions.*v\[None, :\]"):
        MatMul.apply(torch.ones(3), torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"MatMul: b has shape \(\)"):
        MatMul.apply(torch.ones(2, 3), torch.tensor(1.0))


def test_matmul_inner_dimensions_must_agree():
    with pytest.raises(ValueError, match=r"MatMul: a has shape \(2, 3\) and b has shape \(4, 5\); the last dimension of a \(3\)"):
        MatMul.apply(torch.ones(2, 3), torch.ones(4, 5))


def test_matmul_batch_dimensions_must_broadcast():
    with pytest.raises(ValueError, match=r"MatMul: a has shape \(2, 2, 3\) and b has shape \(3, 3, 4\); their batch dimensions"):
        MatMul.apply(torch.ones(2, 2, 3), torch.ones(3, 3, 4))


def test_affine_checks_its_shapes():
    with pytest.raises(ValueError, match=r"Affine: expected x of shape \(N, d_in\).*got x \(3,\), W \(3, 2\), b \(2,\)"):
        Affine.apply(torch.ones(3), torch.ones(3, 2), torch.ones(2))
    with pytest.raises(ValueError, match=r"Affine: shapes do not fit: x \(4, 3\), W \(2, 2\), b \(2,\)"):
        Affine.apply(torch.ones(4, 3), torch.ones(2, 2), torch.ones(2))
    with pytest.raises(ValueError, match=r"Affine: shapes do not fit: x \(4, 3\), W \(3, 2\), b \(5,\)"):
        Affine.apply(torch.ones(4, 3), torch.ones(3, 2), torch.ones(5))


def test_logsumexp_checks_dim():
    with pytest.raises(TypeError, match=r"LogSumExp: dim must be an int.*got float"):
        LogSumExp.apply(torch.ones(3), 0.0)
    with pytest.raises(TypeError, match=r"LogSumExp: dim must be an int.*got bool"):
        LogSumExp.apply(torch.ones(3), True)
    with pytest.raises(ValueError, match=r"LogSumExp: dim=2 is out of range for x of shape \(2, 3\); use a dimension between -2 and 1"):
        LogSumExp.apply(torch.ones(2, 3), 2)
    with pytest.raises(ValueError, match=r"LogSumExp: dim=0 is out of range for x of shape \(\).*shape \(1,\)"):
        LogSumExp.apply(torch.tensor(1.0), 0)


def test_matrix_products_reject_mixed_dtypes():
    # + and * promote float32 with float64; @ does not, and torch's own message names no argument.
    with pytest.raises(TypeError, match=r"MatMul: the tensors must share one dtype, but a is torch.float32, b is torch.float64"):
        MatMul.apply(torch.ones(2, 3), torch.ones(3, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"Affine: the tensors must share one dtype, but x is torch.float32, "
                                        r"W is torch.float32, b is torch.float64.*\.double\(\)"):
        Affine.apply(torch.ones(2, 3), torch.ones(3, 2), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("shape,dim", [((0,), 0), ((2, 0, 3), 1), ((3, 0), -1), ((0, 3), 1)])
def test_logsumexp_of_an_empty_dimension_is_minus_inf_like_torch(shape, dim):
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    out = LogSumExp.apply(x, dim)
    torch.testing.assert_close(out, torch.logsumexp(x, dim))
    (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    assert grad is None or grad.shape == x.shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_non_contiguous_inputs_match_torch(dtype):
    g = _gen(6)
    a = torch.randn(4, 3, generator=g, dtype=dtype).T.requires_grad_()   # (3, 4), transposed
    b = torch.randn(4, 1, generator=g, dtype=dtype).T.requires_grad_()   # (1, 4), broadcast over rows
    W = torch.randn(2, 4, generator=g, dtype=dtype).T.requires_grad_()   # (4, 2), transposed
    bias = torch.randn(2, generator=g, dtype=dtype, requires_grad=True)
    cases = [(Mul.apply(a, b), a * b, (a, b)), (Maximum.apply(a, b), torch.maximum(a, b), (a, b)),
             (MatMul.apply(a, W), a @ W, (a, W)), (Affine.apply(a, W, bias), a @ W + bias, (a, W, bias)),
             (LogSumExp.apply(a, 0), torch.logsumexp(a, 0), (a,))]
    for mine, ref, inputs in cases:
        torch.testing.assert_close(mine, ref)
        upstream = torch.randn(ref.shape, generator=g, dtype=dtype)
        for m, r in zip(torch.autograd.grad(mine, inputs, upstream), torch.autograd.grad(ref, inputs, upstream)):
            torch.testing.assert_close(m, r)

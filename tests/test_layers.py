"""gradlab.layers: every hand-written backward against autograd, stability on large logits, clear errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gradlab import layers as L


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, g, requires_grad=True):
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(requires_grad)


def close(actual, expected, rtol=1e-10, atol=1e-12):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


BATCHES = [1, 3, 16]


# ------------------------------------------------------------------------------------------ layers

@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("d_in,d_out", [(1, 1), (4, 3), (7, 2)])
def test_linear_matches_autograd(n, d_in, d_out):
    g = gen(n * 100 + d_in * 10 + d_out)
    x, W, b = randn(n, d_in, g=g), randn(d_in, d_out, g=g), randn(d_out, g=g)
    out, cache = L.linear_forward(x, W, b)
    close(out, F.linear(x, W.T, b))
    dout = randn(n, d_out, g=g, requires_grad=False)
    out.backward(dout)
    dx, grads = L.linear_backward(dout, cache)
    assert set(grads) == {"W", "b"}
    close(dx, x.grad)
    close(grads["W"], W.grad)
    close(grads["b"], b.grad)
    assert not dx.requires_grad and not grads["W"].requires_grad


@pytest.mark.parametrize("name,reference", [("relu", torch.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh)])
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (6, 4), (2, 3, 4)])
def test_activations_match_autograd(name, reference, shape):
    g = gen(len(shape) * 10 + shape[-1])
    x = randn(*shape, g=g)
    forward, backward = L.ACTIVATIONS[name]
    out, cache = forward(x)
    close(out, reference(x))
    dout = randn(*shape, g=g, requires_grad=False)
    out.backward(dout)
    dx, grads = backward(dout, cache)
    assert grads == {}
    close(dx, x.grad)


def test_relu_subgradient_at_zero_is_zero_like_pytorch():
    x = torch.tensor([[-1.0, 0.0, 2.0]], dtype=torch.float64, requires_grad=True)
    out, cache = L.relu_forward(x)
    torch.relu(x).sum().backward()
    dx, _ = L.relu_backward(torch.ones_like(out), cache)
    close(dx, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64))
    close(dx, x.grad)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_saturating_activations_are_finite_at_100(name):
    x = torch.tensor([[-100.0, 0.0, 100.0]], requires_grad=True)
    out, cache = L.ACTIVATIONS[name][0](x)
    out.sum().backward()
    dx, _ = L.ACTIVATIONS[name][1](torch.ones_like(out), cache)
    assert torch.isfinite(out).all() and torch.isfinite(dx).all()
    close(dx, x.grad, rtol=1e-6, atol=1e-12)


# ------------------------------------------------------------------------------------------ losses

@pytest.mark.parametrize("shape", [(1,), (1, 1), (5, 1), (4, 3)])
def test_mse_matches_autograd_and_torch(shape):
    g = gen(sum(shape))
    pred, target = randn(*shape, g=g), randn(*shape, g=g, requires_grad=False)
    loss, cache = L.mse_forward(pred, target)
    assert loss.shape == ()
    close(loss, F.mse_loss(pred, target))
    loss.backward()
    close(L.mse_backward(cache), pred.grad)


@pytest.mark.parametrize("shape", [(1, 1), (8, 1), (5, 3)])
def test_bce_with_logits_matches_torch(shape):
    g = gen(10 + sum(shape))
    z = randn(*shape, g=g)
    y = torch.randint(0, 2, shape, generator=g).double()
    loss, cache = L.bce_with_logits_forward(z, y)
    reference = F.binary_cross_entropy_with_logits(z, y)
    close(loss, reference)
    reference.backward()
    close(L.bce_with_logits_backward(cache), z.grad)


def test_bce_with_logits_accepts_soft_targets():
    g = gen(3)
    z = randn(6, 2, g=g)
    y = torch.rand(6, 2, generator=g, dtype=torch.float64)
    loss, cache = L.bce_with_logits_forward(z, y)
    F.binary_cross_entropy_with_logits(z, y).backward()
    close(L.bce_with_logits_backward(cache), z.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bce_with_logits_is_stable_at_100(dtype):
    z = torch.tensor([[100.0], [-100.0], [100.0], [-100.0], [0.0]], dtype=dtype, requires_grad=True)
    y = torch.tensor([[1.0], [0.0], [0.0], [1.0], [1.0]], dtype=dtype)
    loss, cache = L.bce_with_logits_forward(z, y)
    reference = F.binary_cross_entropy_with_logits(z, y)
    assert torch.isfinite(loss) and torch.isfinite(reference)
    close(loss, reference, rtol=1e-6, atol=1e-6)
    reference.backward()
    grad = L.bce_with_logits_backward(cache)
    assert torch.isfinite(grad).all()
    close(grad, z.grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("n,c", [(1, 2), (1, 5), (4, 3), (16, 10)])
def test_softmax_cross_entropy_matches_torch(n, c):
    g = gen(n * 10 + c)
    z = randn(n, c, g=g)
    labels = torch.randint(0, c, (n,), generator=g)
    loss, cache = L.softmax_cross_entropy_forward(z, labels)
    reference = F.cross_entropy(z, labels)
    close(loss, reference)
    reference.backward()
    dz = L.softmax_cross_entropy_backward(cache)
    close(dz, z.grad)
    close(dz.sum(1), torch.zeros(n, dtype=torch.float64))  # each row of p - onehot sums to 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softmax_cross_entropy_is_stable_at_100(dtype):
    z = torch.tensor([[100.0, -100.0, 0.0], [-100.0, 100.0, 99.0], [100.0, 100.0, -100.0]],
                     dtype=dtype, requires_grad=True)
    labels = torch.tensor([1, 2, 0])
    loss, cache = L.softmax_cross_entropy_forward(z, labels)
    reference = F.cross_entropy(z, labels)
    assert torch.isfinite(loss)
    close(loss, reference, rtol=1e-6, atol=1e-5)
    reference.backward()
    dz = L.softmax_cross_entropy_backward(cache)
    assert torch.isfinite(dz).all()
    close(dz, z.grad, rtol=1e-6, atol=1e-7)


def test_l2_penalty_matches_autograd():
    g = gen(5)
    W = randn(4, 3, g=g)
    penalty, cache = L.l2_penalty_forward(W, 0.01)
    close(penalty, 0.01 * (W.detach() ** 2).sum())
    penalty.backward()
    close(L.l2_penalty_backward(cache), W.grad)
    close(L.l2_penalty_backward(cache), 2 * 0.01 * W.detach())


# ------------------------------------------------------------------------------------------ MLP

def test_init_mlp_shapes_seeded_and_scaled():
    params = L.init_mlp([2, 8, 8, 3], generator=gen(0))
    assert list(params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert params["W1"].shape == (2, 8) and params["b3"].shape == (3,)
    assert params["W2"].dtype == torch.float64 and not params["W2"].requires_grad
    assert torch.equal(params["b2"], torch.zeros(8, dtype=torch.float64))
    again = L.init_mlp([2, 8, 8, 3], generator=gen(0))
    assert all(torch.equal(params[k], again[k]) for k in params)
    wide = L.init_mlp([400, 400], generator=gen(1))["W1"]
    assert abs(wide.var().item() - 2 / 400) < 0.1 * 2 / 400


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("sizes,activation", [
    ([3, 5, 2], "relu"),
    ([4, 6, 5, 3], "tanh"),
    ([2, 7, 7, 4], ["relu", "sigmoid"]),
    ([5, 1], "relu"),
])
def test_mlp_backward_matches_autograd(n, sizes, activation):
    g = gen(n + len(sizes))
    params = {k: v.requires_grad_() for k, v in L.init_mlp(sizes, generator=g).items()}
    for k in params:
        if k.startswith("b"):
            params[k].data.normal_(generator=g)
    x = randn(n, sizes[0], g=g)
    logits, cache = L.mlp_forward(x, params, activation)
    assert logits.shape == (n, sizes[-1])
    dlogits = randn(n, sizes[-1], g=g, requires_grad=False)
    logits.backward(dlogits)
    dx, grads = L.mlp_backward(dlogits, cache)
    assert list(grads) == list(params)
    close(dx, x.grad)
    for k in params:
        close(grads[k], params[k].grad)


@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_mlp_loss_and_grads_matches_autograd(l2):
    g = gen(7)
    params = {k: v.requires_grad_() for k, v in L.init_mlp([2, 6, 3], generator=g).items()}
    x = randn(10, 2, g=g, requires_grad=False)
    labels = torch.randint(0, 3, (10,), generator=g)
    loss, grads = L.mlp_loss_and_grads(x, labels, params, activation="tanh", l2=l2)
    logits, _ = L.mlp_forward(x, params, "tanh")
    reference = F.cross_entropy(logits, labels) + l2 * sum((params[k] ** 2).sum() for k in ("W1", "W2"))
    close(loss.detach(), reference.detach())
    reference.backward()
    for k in params:
        close(grads[k], params[k].grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mlp_is_stable_with_huge_logits(dtype):
    params = L.init_mlp([2, 4, 3], generator=gen(2), dtype=dtype)
    params["W2"] = params["W2"] * 1000  # logits in the hundreds or thousands
    x = torch.randn(5, 2, generator=gen(3), dtype=dtype)
    labels = torch.tensor([0, 1, 2, 0, 1])
    loss, grads = L.mlp_loss_and_grads(x, labels, params)
    assert torch.isfinite(loss) and all(torch.isfinite(v).all() for v in grads.values())
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    logits, _ = L.mlp_forward(x, leaves)
    assert logits.abs().max() > 100
    reference = F.cross_entropy(logits, labels)
    reference.backward()
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else {}
    close(loss.detach(), reference.detach(), **tol)
    for k in params:
        close(grads[k], leaves[k].grad, **tol)


def test_float32_and_non_contiguous_inputs_match_autograd():
    g = gen(21)
    x = torch.randn(3, 4, generator=g).T.requires_grad_()          # (4, 3), transposed, float32
    W = torch.randn(2, 3, generator=g).T.requires_grad_()          # (3, 2), transposed
    b = torch.randn(2, generator=g, requires_grad=True)
    out, lin = L.linear_forward(x, W, b)
    act, tc = L.tanh_forward(out)
    labels = torch.tensor([1, 0, 1, 1])
    loss, sc = L.softmax_cross_entropy_forward(act, labels)
    loss.backward()
    dact = L.softmax_cross_entropy_backward(sc)
    dout, _ = L.tanh_backward(dact, tc)
    dx, grads = L.linear_backward(dout, lin)
    assert dx.dtype == grads["W"].dtype == torch.float32
    for mine, ref in ((dx, x.grad), (grads["W"], W.grad), (grads["b"], b.grad)):
        close(mine, ref, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ errors

def test_linear_errors_name_the_shapes():
    x, W, b = torch.zeros(4, 3), torch.zeros(3, 2), torch.zeros(2)
    with pytest.raises(ValueError, match=r"x has shape \(4, 5\) \(D_in = 5\) but W has shape \(3, 2\)"):
        L.linear_forward(torch.zeros(4, 5), W, b)
    with pytest.raises(ValueError, match=r"x must be a batch of shape \(N, D_in\).*got shape \(3,\).*unsqueeze\(0\)"):
        L.linear_forward(torch.zeros(3), W, b)
    with pytest.raises(ValueError, match=r"empty batch"):
        L.linear_forward(torch.zeros(0, 3), W, b)
    with pytest.raises(ValueError, match=r"b must have shape \(2,\).*got \(1, 2\)"):
        L.linear_forward(x, W, torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"W must have shape \(D_in, D_out\), got \(3,\)"):
        L.linear_forward(x, torch.zeros(3), b)
    with pytest.raises(TypeError, match=r"one dtype.*x is torch.float32, W is torch.float64"):
        L.linear_forward(x, W.double(), b)
    with pytest.raises(TypeError, match=r"linear_forward: x has dtype torch.int64"):
        L.linear_forward(torch.zeros(4, 3, dtype=torch.long), W, b)
    with pytest.raises(TypeError, match=r"linear_forward: W must be a torch.Tensor, got list"):
        L.linear_forward(x, [[1.0]], b)
    _, cache = L.linear_forward(x, W, b)
    with pytest.raises(ValueError, match=r"dout has shape \(2, 4\), but the forward output had shape \(4, 2\)"):
        L.linear_backward(torch.zeros(2, 4), cache)


def test_activation_backward_errors():
    _, cache = L.relu_forward(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"relu_backward: dout has shape \(3, 2\).*\(2, 3\)"):
        L.relu_backward(torch.zeros(3, 2), cache)
    with pytest.raises(ValueError, match=r"made by relu_forward, not sigmoid_forward"):
        L.sigmoid_backward(torch.zeros(2, 3), cache)
    with pytest.raises(TypeError, match=r"tanh_backward: cache must be the dict returned by tanh_forward"):
        L.tanh_backward(torch.zeros(2, 3), (1, 2))
    with pytest.raises(TypeError, match=r"sigmoid_forward: x has dtype torch.int64"):
        L.sigmoid_forward(torch.zeros(2, dtype=torch.long))


def test_loss_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"pred has shape \(4, 1\) but target has shape \(4,\).*broadcasting"):
        L.mse_forward(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(ValueError, match=r"mse_forward: pred is empty"):
        L.mse_forward(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match=r"logits has shape \(3, 1\) but targets has shape \(3,\)"):
        L.bce_with_logits_forward(torch.zeros(3, 1), torch.zeros(3))
    with pytest.raises(ValueError, match=r"targets must be probabilities in \[0, 1\].*from 0 to 2"):
        L.bce_with_logits_forward(torch.zeros(3), torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"bce_with_logits_forward: logits is empty"):
        L.bce_with_logits_forward(torch.zeros(0, 1), torch.zeros(0, 1))
    with pytest.raises(TypeError, match=r"labels must be integer class indices.*torch.float32.*argmax\(1\)"):
        L.softmax_cross_entropy_forward(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\).*logits \(2, 3\), got \(3,\)"):
        L.softmax_cross_entropy_forward(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\).*from 0 to 3"):
        L.softmax_cross_entropy_forward(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"logits must be a batch of shape \(N, C\).*got shape \(3,\)"):
        L.softmax_cross_entropy_forward(torch.zeros(3), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"lam must be a finite number >= 0.*-0.1"):
        L.l2_penalty_forward(torch.zeros(2), -0.1)
    _, cache = L.mse_forward(torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"made by mse_forward, not softmax_cross_entropy_forward"):
        L.softmax_cross_entropy_backward(cache)


def test_mlp_errors():
    g = gen(0)
    params = L.init_mlp([2, 4, 3], generator=g)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator"):
        L.init_mlp([2, 3], generator=0)
    with pytest.raises(ValueError, match=r"sizes must list at least two positive integers"):
        L.init_mlp([2], generator=g)
    with pytest.raises(ValueError, match=r"sizes must list at least two positive integers.*0"):
        L.init_mlp([2, 0, 3], generator=g)
    with pytest.raises(ValueError, match=r"x has shape \(5, 3\) but W1 has shape \(2, 4\).*expects 2 input features"):
        L.mlp_forward(torch.zeros(5, 3, dtype=torch.float64), params)
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'"):
        L.mlp_forward(torch.zeros(5, 2, dtype=torch.float64), params, "gelu")
    with pytest.raises(ValueError, match=r"one name per hidden layer \(1\)"):
        L.mlp_forward(torch.zeros(5, 2, dtype=torch.float64), params, ["relu", "tanh"])
    with pytest.raises(ValueError, match=r"must hold W1, b1, \.\.\., WL, bL.*\['W1', 'W2', 'b1'\]"):
        L.mlp_forward(torch.zeros(5, 2, dtype=torch.float64), {k: params[k] for k in ("W1", "b1", "W2")})
    bad = dict(params, W2=torch.zeros(5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"W1 \(2, 4\) outputs 4 features but W2 \(5, 3\) expects 5"):
        L.mlp_forward(torch.zeros(5, 2, dtype=torch.float64), bad)
    logits, cache = L.mlp_forward(torch.zeros(5, 2, dtype=torch.float64), params)
    with pytest.raises(ValueError, match=r"mlp_backward: dlogits has shape \(5, 4\), but the forward output had shape \(5, 3\)"):
        L.mlp_backward(torch.zeros(5, 4, dtype=torch.float64), cache)
    with pytest.raises(ValueError, match=r"l2 must be a finite number >= 0.*-1"):
        L.mlp_loss_and_grads(torch.zeros(5, 2, dtype=torch.float64), torch.zeros(5, dtype=torch.long), params, l2=-1)


def test_dtype_mismatches_are_named():
    x64, W, b = torch.zeros(4, 3, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    _, cache = L.linear_forward(x64, W, b)
    with pytest.raises(TypeError, match=r"linear_backward: dout has dtype torch.float32, but the forward pass ran in "
                                        r"torch.float64.*dout.to\(torch.float64\)"):
        L.linear_backward(torch.zeros(4, 2), cache)
    with pytest.raises(TypeError, match=r"mse_forward: the tensors must share one dtype, but pred is torch.float32, "
                                        r"target is torch.float64"):
        L.mse_forward(torch.zeros(3), torch.zeros(3, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"bce_with_logits_forward: the tensors must share one dtype.*logits is torch.float64"):
        L.bce_with_logits_forward(torch.zeros(3, dtype=torch.float64), torch.zeros(3))
    params = L.init_mlp([2, 4, 3], generator=gen(0))
    with pytest.raises(TypeError, match=r"mlp_forward: x has dtype torch.float32 but the parameters have torch.float64 "
                                        r"\(init_mlp makes float64 by default\)"):
        L.mlp_forward(torch.zeros(5, 2), params)
    mixed = dict(params, W2=params["W2"].float(), b2=params["b2"].float())
    with pytest.raises(TypeError, match=r"all parameters must share one dtype, got W1 torch.float64, b1 torch.float64, "
                                        r"W2 torch.float32, b2 torch.float32"):
        L.mlp_forward(torch.zeros(5, 2, dtype=torch.float64), mixed)
    _, mlp_cache = L.mlp_forward(torch.zeros(5, 2, dtype=torch.float64), params)
    with pytest.raises(TypeError, match=r"mlp_backward: dlogits has dtype torch.float32, but the forward pass ran in torch.float64"):
        L.mlp_backward(torch.zeros(5, 3), mlp_cache)


def test_remaining_argument_errors():
    g = gen(0)
    params = L.init_mlp([2, 4, 3], generator=g)
    x = torch.zeros(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"sizes must list at least two positive integers.*got 3"):
        L.init_mlp(3, generator=g)
    with pytest.raises(ValueError, match=r"sizes must list at least two positive integers.*got '23'"):
        L.init_mlp("23", generator=g)
    for dtype in ("float64", torch.int64):
        with pytest.raises(TypeError, match=r"init_mlp: dtype must be a floating-point torch dtype"):
            L.init_mlp([2, 3], generator=g, dtype=dtype)
    with pytest.raises(TypeError, match=r"mlp_forward: params must be a dict.*got list"):
        L.mlp_forward(x, [params["W1"]])
    with pytest.raises(ValueError, match=r"W1 must be \(D_in, D_out\) and b1 \(D_out,\), got W1 \(2, 4\), b1 \(3,\)"):
        L.mlp_forward(x, dict(params, b1=torch.zeros(3, dtype=torch.float64)))
    with pytest.raises(TypeError, match=r"mlp_forward: b1 must be a torch.Tensor, got list"):
        L.mlp_forward(x, dict(params, b1=[0.0] * 4))
    for activation in (None, 3):
        with pytest.raises(TypeError, match=r"activation must be a name from \['relu', 'sigmoid', 'tanh'\]"):
            L.mlp_forward(x, params, activation)
    with pytest.raises(ValueError, match=r"targets must be probabilities.*1 of the 3 targets are NaN"):
        L.bce_with_logits_forward(torch.zeros(3), torch.tensor([0.0, float("nan"), 1.0]))
    with pytest.raises(TypeError, match=r"labels must be integer class indices.*torch.bool"):
        L.softmax_cross_entropy_forward(torch.zeros(2, 3), torch.tensor([True, False]))
    with pytest.raises(ValueError, match=r"lam must be a finite number >= 0.*'a'"):
        L.l2_penalty_forward(torch.zeros(2), "a")
    with pytest.raises(ValueError, match=r"l2 must be a finite number >= 0.*inf"):
        L.mlp_loss_and_grads(x, torch.zeros(5, dtype=torch.long), params, l2=float("inf"))
    _, cache = L.linear_forward(torch.zeros(1, 2), torch.zeros(2, 2), torch.zeros(2))
    for backward in (L.mse_backward, L.bce_with_logits_backward, L.l2_penalty_backward, L.softmax_cross_entropy_backward):
        with pytest.raises(ValueError, match=r"this cache was made by linear_forward"):
            backward(cache)
    with pytest.raises(TypeError, match=r"mlp_backward: cache must be the dict returned by mlp_forward, got NoneType"):
        L.mlp_backward(torch.zeros(1, 2), None)

"""Issue 25: each edge where gradlab.engine and gradlab.layers disagreed with PyTorch now agrees, or is
refused with an error that names the argument, and nothing changes state before the error."""
import math

import pytest
import torch
import torch.nn.functional as F

from gradlab import layers as L
from gradlab.engine import Tensor, Value, cross_entropy

F64 = torch.float64
INF, NAN = math.inf, math.nan


def _randn(*shape, seed=0, dtype=F64):
    return torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def _same(a, b):
    """Equal as IEEE numbers: NaN where the other has NaN, the same infinities, close elsewhere."""
    a, b = torch.as_tensor(a, dtype=F64), torch.as_tensor(b, dtype=F64)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-300, equal_nan=True)


# ----------------------------------------------------------------------------------------- Value


def _value_vs_torch(fn, x):
    v = Value(x)
    out = fn(v)
    out.backward()
    t = torch.tensor(x, dtype=F64, requires_grad=True)
    ref = fn(t)
    ref.backward()
    _same(out.data, ref.detach())
    _same(v.grad, t.grad)
    return out.data, v.grad


@pytest.mark.parametrize("name, fn, x, expected", [
    ("relu at NaN", lambda a: a.relu(), NAN, (NAN, 1.0)),
    ("relu at -0", lambda a: a.relu(), -0.0, (-0.0, 0.0)),
    ("sqrt at 0", lambda a: a ** 0.5, 0.0, (0.0, INF)),
    ("1/x at -0", lambda a: a ** -1, -0.0, (-INF, -INF)),
    ("cube root of -8", lambda a: a ** (1 / 3), -8.0, (NAN, NAN)),
    ("x ** 0 at NaN", lambda a: a ** 0, NAN, (1.0, 0.0)),
    ("log at 0", lambda a: a.log(), 0.0, (-INF, INF)),
    ("log at -1", lambda a: a.log(), -1.0, (NAN, -1.0)),
    ("1 / x at 0", lambda a: 1.0 / a, 0.0, (INF, -INF)),
    ("x / 0", lambda a: a / 0.0, 2.0, (INF, INF)),
    ("0 / 0", lambda a: a / 0.0, 0.0, (NAN, INF)),
    ("exp overflows", lambda a: a.exp(), 1000.0, (INF, INF)),
    ("x ** 2 overflows", lambda a: a ** 2, 1e200, (INF, 2e200)),
    ("x ** 3 overflows", lambda a: a ** 3, -1e200, (-INF, INF)),
    ("tanh at inf", lambda a: a.tanh(), INF, (1.0, 0.0)),
])
def test_value_edges_match_pytorch(name, fn, x, expected):
    data, grad = _value_vs_torch(fn, x)
    _same(data, expected[0])
    _same(grad, expected[1])
    assert math.copysign(1.0, data) == math.copysign(1.0, expected[0]) or math.isnan(data), name


# ----------------------------------------------------------------------------------------- Tensor


def test_tensor_relu_passes_nan_with_slope_one_and_gives_zero_for_an_infinite_upstream():
    x = torch.tensor([NAN, -1.0, 0.0, 2.0], dtype=F64)
    up = torch.tensor([3.0, INF, INF, 1.0], dtype=F64)
    mine = Tensor(x.clone())
    mine.relu().backward(up)
    leaf = x.clone().requires_grad_()
    torch.relu(leaf).backward(up)
    assert mine.grad.tolist() == leaf.grad.tolist() == [3.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("shape", [(2, 3), (4,), ()])
def test_sum_and_mean_keep_every_dimension_without_an_axis(reduce, shape):
    a = _randn(*shape, seed=1)
    mine = Tensor(a.clone())
    out = getattr(mine, reduce)(keepdims=True)
    leaf = a.clone().requires_grad_()
    ref = getattr(leaf, reduce)(dim=None, keepdim=True)
    assert out.shape == ref.shape
    (out * out).sum().backward()
    (ref * ref).sum().backward()
    torch.testing.assert_close(mine.grad, leaf.grad, rtol=1e-12, atol=1e-15)


def test_data_changed_in_place_after_the_forward_pass_is_refused_and_no_gradient_changes():
    W, x = Tensor(_randn(3, 2, seed=2)), Tensor(_randn(4, 3, seed=3))
    h = (x @ W).tanh()
    loss = (h * h).sum()
    W.grad = torch.ones(3, 2, dtype=F64)
    before_h = h.grad
    W.data.mul_(2.0)                 # PyTorch: "modified by an inplace operation"
    with pytest.raises(RuntimeError, match=r"rule of @ saved.*changed in place.*version 0 -> 1.*x\.data = x\.data \* 2"):
        loss.backward()
    assert torch.equal(W.grad, torch.ones(3, 2, dtype=F64)) and x.grad is None and h.grad is before_h
    h.data.add_(1.0)
    with pytest.raises(RuntimeError, match="rule of"):
        loss.backward()


def test_rebinding_data_or_a_new_forward_pass_after_an_in_place_step_is_fine():
    W, x = Tensor(_randn(3, 2, seed=4)), Tensor(_randn(4, 3, seed=5), requires_grad=False)
    loss = ((x @ W) ** 2).sum()
    loss.backward()
    first = W.grad
    W.data = W.data * 2              # a new tensor: the old graph keeps the old one, consistently
    W.data -= 0.1                    # ...and this changes only the new one
    W.grad = None
    loss.backward()
    torch.testing.assert_close(W.grad, first)
    W.grad = None
    ((x @ W) ** 2).sum().backward()  # an SGD step in place, then a new forward pass: recorded anew
    assert W.grad is not None


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                                   torch.uint16, torch.uint32, torch.uint64], ids=str)
def test_engine_cross_entropy_takes_labels_of_every_integer_dtype(dtype):
    logits = _randn(4, 3, seed=6)
    labels = torch.tensor([0, 2, 1, 2]).to(dtype)
    mine = Tensor(logits.clone())
    loss = cross_entropy(mine, labels)
    loss.backward()
    leaf = logits.clone().requires_grad_()
    ref = F.cross_entropy(leaf, labels.long())
    ref.backward()
    torch.testing.assert_close(loss.data, ref.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(mine.grad, leaf.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("labels, match", [
    (torch.tensor([0, 3]), r"labels must lie in \[0, 3\).*from 0 to 3"),
    (torch.tensor([-100, 1]), "ignore_index is not supported"),
    (torch.tensor([2 ** 63 + 5, 1], dtype=torch.uint64), r"labels must lie in \[0, 3\)"),
])
def test_engine_cross_entropy_names_labels_out_of_range(labels, match):
    with pytest.raises(ValueError, match=match):
        cross_entropy(Tensor(_randn(2, 3)), labels)
    with pytest.raises(TypeError, match="dtype torch.float32; for float indices use labels.long"):
        cross_entropy(Tensor(_randn(2, 3)), torch.tensor([0.0, 1.0]))


# ----------------------------------------------------------------------------------------- batch norm


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(running_var=torch.ones(4, dtype=F64)), ValueError, r"running_var must have shape \(3,\)"),
    (dict(running_var=torch.ones(3)), TypeError, "running_var has dtype torch.float32"),
    (dict(running_var=None), ValueError, "both running_mean and running_var"),
    (dict(num_batches_tracked=torch.tensor(0.0)), TypeError, "num_batches_tracked must be a 0-dim integer"),
    (dict(momentum=None, num_batches_tracked=None), ValueError, "num_batches_tracked=torch.tensor"),
    (dict(momentum=-0.1), ValueError, "momentum must be a number in"),
    (dict(training=1), TypeError, "training must be True"),
])
def test_batch_norm_checks_everything_before_it_touches_the_running_statistics(kwargs, error, match):
    rm, count = torch.full((3,), 0.5, dtype=F64), torch.tensor(7)
    args = dict(running_mean=rm, running_var=torch.ones(3, dtype=F64), num_batches_tracked=count)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        L.batch_norm_forward(_randn(4, 3), torch.ones(3, dtype=F64), torch.zeros(3, dtype=F64), **args)
    assert rm.tolist() == [0.5] * 3 and count.item() == 7


@pytest.mark.parametrize("n", [1, 5])
def test_batch_norm_evaluation_mode_matches_pytorch(n):
    x, g, b = _randn(n, 3, seed=1), _randn(3, seed=2), _randn(3, seed=3)
    rm, rv = _randn(3, seed=4), _randn(3, seed=5).abs() + 0.1
    leaves = [t.clone().requires_grad_() for t in (x, g, b)]
    ref = F.batch_norm(leaves[0], rm.clone(), rv.clone(), leaves[1], leaves[2], training=False, eps=1e-5)
    out, cache = L.batch_norm_forward(x, g, b, running_mean=rm, running_var=rv, training=False)
    torch.testing.assert_close(out, ref.detach(), rtol=1e-12, atol=1e-12)
    dout = _randn(n, 3, seed=6)
    ref.backward(dout)
    dx, grads = L.batch_norm_backward(dout, cache)
    for mine, leaf in zip((dx, grads["gamma"], grads["beta"]), leaves):
        torch.testing.assert_close(mine, leaf.grad, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="evaluation mode .* pass both"):
        L.batch_norm_forward(x, g, b, training=False)


@pytest.mark.parametrize("momentum", [None, 0.3])
def test_batch_norm_running_statistics_follow_nn_batchnorm1d(momentum):
    bn = torch.nn.BatchNorm1d(3, momentum=momentum, dtype=F64)
    rm, rv, count = torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64), torch.tensor(0)
    for seed in range(4):
        x = _randn(5, 3, seed=seed) * (seed + 1) + seed
        bn(x)
        L.batch_norm_forward(x, torch.ones(3, dtype=F64), torch.zeros(3, dtype=F64), running_mean=rm,
                             running_var=rv, momentum=momentum, num_batches_tracked=count)
    torch.testing.assert_close(rm, bn.running_mean, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(rv, bn.running_var, rtol=1e-12, atol=1e-14)
    assert count.item() == bn.num_batches_tracked.item() == 4


# ----------------------------------------------------------------------------------------- saved tensors


def test_softmax_backward_refuses_a_gradient_of_another_shape_or_dtype():
    p = torch.softmax(_randn(3, 4), -1)
    with pytest.raises(ValueError, match=r"dp has shape \(4,\) but p has shape \(3, 4\)"):
        L.softmax_backward(_randn(4), p)
    with pytest.raises(TypeError, match="dp is torch.float32, p is torch.float64"):
        L.softmax_backward(_randn(3, 4).float(), p)


@pytest.mark.parametrize("make, change, match", [
    (lambda g: L.layer_norm_forward(_randn(2, 3), g, _randn(3)), lambda g, out: g.mul_(2), "gamma"),
    (lambda W: L.linear_forward(_randn(2, 3), W, _randn(3)), lambda W, out: W.add_(1), "W"),
    (lambda x: L.sigmoid_forward(x), lambda x, out: out.mul_(2), "the forward output"),
])
def test_a_saved_tensor_changed_in_place_is_refused_by_backward(make, change, match):
    t = _randn(3, 3, seed=7)[:, 0].clone() if "layer" in str(make.__code__.co_names) else _randn(3, 3, seed=7)
    out, cache = make(t)
    change(t, out)
    backward = {"layer_norm": L.layer_norm_backward, "linear": L.linear_backward,
                "sigmoid": L.sigmoid_backward}[cache["op"]]
    with pytest.raises(RuntimeError, match=f"{match}.*changed in place after {cache['op']}_forward saved it"):
        backward(torch.ones(cache["out_shape"], dtype=F64), cache)


# ----------------------------------------------------------------------------------------- layer norm, attention


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), (2, 1, 3, 1), (0, 3)])
def test_layer_norm_normalises_the_last_dimension_of_any_shape(shape):
    d = shape[-1]
    x, g, b = _randn(*shape, seed=1), _randn(d, seed=2), _randn(d, seed=3)
    leaves = [t.clone().requires_grad_() for t in (x, g, b)]
    ref = F.layer_norm(leaves[0], (d,), leaves[1], leaves[2], 1e-5)
    out, cache = L.layer_norm_forward(x, g, b)
    torch.testing.assert_close(out, ref.detach(), rtol=1e-10, atol=1e-10)
    dout = _randn(*shape, seed=4)
    ref.backward(dout)
    dx, grads = L.layer_norm_backward(dout, cache)
    for mine, leaf in zip((dx, grads["gamma"], grads["beta"]), leaves):
        torch.testing.assert_close(mine, leaf.grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("lead", [(2,), (2, 3)])
@pytest.mark.parametrize("save", ["probs", "logsumexp"])
def test_attention_with_batch_heads_and_a_key_padding_mask_matches_sdpa(lead, save):
    t, s, d, dv = 4, 5, 3, 2
    q, k, v = _randn(*lead, t, d, seed=1), _randn(*lead, s, d, seed=2), _randn(*lead, s, dv, seed=3)
    pad = torch.zeros(lead[0], s, dtype=torch.bool)
    pad[0, 3:] = True                                         # sequence 0 has 3 real keys
    mask = torch.ones(t, s, dtype=torch.bool)
    mask[1, 0] = False
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    keep = mask & (~pad).reshape(lead[0], *([1] * len(lead)), s) & torch.ones(t, s, dtype=torch.bool).tril()
    ref = F.scaled_dot_product_attention(*leaves, attn_mask=keep)
    out, cache = L.attention_forward(q, k, v, causal=True, mask=mask, key_padding_mask=pad, save=save)
    torch.testing.assert_close(out, ref.detach(), rtol=1e-10, atol=1e-12)
    dout = _randn(*lead, t, dv, seed=4)
    ref.backward(dout)
    for mine, leaf in zip(L.attention_backward(dout, cache), leaves):
        torch.testing.assert_close(mine, leaf.grad, rtol=1e-10, atol=1e-12)


def test_logsumexp_attention_keeps_no_t_by_t_tensor():
    q = _randn(2, 6, 3, seed=1)
    _, cache = L.attention_forward(q, q, q, causal=True, save="logsumexp")
    saved = {key: tuple(x.shape) for key, x in cache.items() if isinstance(x, torch.Tensor)}
    assert saved == {"q": (2, 6, 3), "k": (2, 6, 3), "v": (2, 6, 3), "lse": (2, 6, 1)}


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(key_padding_mask=torch.tensor([[False, True, True], [True, True, True]])), ValueError,
     r"hide every key from query 0 of batch/head \(1, 0\)"),
    (dict(key_padding_mask=torch.zeros(2, 4, dtype=torch.bool)), ValueError,
     r"key_padding_mask must have shape \(2, 3\)"),
    (dict(key_padding_mask=torch.zeros(2, 3)), TypeError, "key_padding_mask must be a boolean"),
    (dict(mask=torch.ones(3, 2, 3, dtype=torch.bool)), ValueError, r"mask must have shape \(2, 2, 3, 3\)"),
    (dict(causal=1), TypeError, "causal must be True or False"),
])
def test_attention_batch_errors_name_the_argument(kwargs, error, match):
    q = _randn(2, 2, 3, 4)
    with pytest.raises(error, match=match):
        L.attention_forward(q, q, q, **kwargs)


def test_a_fully_padded_single_sequence_is_refused_by_name():
    q = _randn(1, 1)
    with pytest.raises(ValueError, match="hide every key from query 0; each query"):
        L.attention_forward(q, q, q, key_padding_mask=torch.tensor([True]))

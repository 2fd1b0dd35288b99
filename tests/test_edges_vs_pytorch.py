"""Reference code equal to PyTorch at the edges (issue 14): labels of every integer dtype, BCE at a
logit of 0, ReLU/Maximum selecting rather than masking (inf and NaN), mse_backward in float16."""
import pytest
import torch
import torch.nn.functional as F

from gradlab import layers
from gradlab.functions import Maximum, ReLU

INT_DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
              torch.uint16, torch.uint32, torch.uint64]


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=str)
def test_labels_of_every_integer_dtype_give_pytorchs_loss(dtype):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 2, 1, 2]).to(dtype)
    loss, cache = layers.softmax_cross_entropy_forward(logits, labels)
    reference = F.cross_entropy(logits, labels.long())
    assert torch.allclose(loss, reference, rtol=1e-12, atol=0)
    reference.backward()
    assert torch.allclose(layers.softmax_cross_entropy_backward(cache), logits.grad, rtol=1e-12, atol=1e-15)


def test_uint8_labels_are_indices_not_a_mask():
    # With uint8 labels [1, 0, 1, 1] a mask would pick rows; indices pick classes 1, 0, 1, 1.
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.5, 0.5], [1.0, 3.0]], dtype=torch.float64)
    labels = torch.tensor([1, 0, 1, 1], dtype=torch.uint8)
    loss, _ = layers.softmax_cross_entropy_forward(logits, labels)
    assert torch.allclose(loss, F.cross_entropy(logits, labels), rtol=1e-12)   # PyTorch accepts uint8


def test_bool_labels_are_refused_naming_the_dtype():
    with pytest.raises(TypeError, match="got dtype torch.bool"):
        layers.softmax_cross_entropy_forward(torch.zeros(2, 3), torch.tensor([True, False]))


def test_bce_with_logits_differentiates_right_at_zero():
    logits = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[0.0, 1.0, 0.3], [1.0, 0.0, 0.5]], dtype=torch.float64)
    loss, cache = layers.bce_with_logits_forward(logits, targets)
    loss.backward()
    ours = logits.grad.clone()
    ref_logits = logits.detach().clone().requires_grad_(True)
    reference = F.binary_cross_entropy_with_logits(ref_logits, targets)
    reference.backward()
    assert torch.allclose(loss, reference, rtol=1e-12)
    assert torch.allclose(ours, ref_logits.grad, rtol=1e-12, atol=1e-15)        # autograd through ours
    assert torch.allclose(layers.bce_with_logits_backward(cache), ref_logits.grad, rtol=1e-12)


@pytest.mark.parametrize("z", [-1e4, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1e4])
def test_bce_with_logits_value_and_gradient_equal_pytorch_far_out(z):
    logits = torch.full((2,), z, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0.0, 1.0], dtype=torch.float64)
    loss, _ = layers.bce_with_logits_forward(logits, targets)
    loss.backward()
    ref_logits = logits.detach().clone().requires_grad_(True)
    reference = F.binary_cross_entropy_with_logits(ref_logits, targets)
    reference.backward()
    assert torch.allclose(loss, reference, rtol=1e-12, atol=1e-15)
    assert torch.allclose(logits.grad, ref_logits.grad, rtol=1e-12, atol=1e-15)   # gradients are <= 0.5


def _relu_cases():
    inf, nan = float("inf"), float("nan")
    x = torch.tensor([-1.0, 0.0, 1.0, nan, 2.0], dtype=torch.float64)
    upstream = torch.tensor([inf, inf, inf, 1.0, nan], dtype=torch.float64)
    return x, upstream


def _torch_grad(fn, inputs, upstream):
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    fn(*leaves).backward(upstream)
    return [t.grad for t in leaves]


def test_relu_function_passes_inf_and_nan_as_pytorch_does():
    x, upstream = _relu_cases()
    (ours,) = _torch_grad(ReLU.apply, [x], upstream)
    (theirs,) = _torch_grad(torch.relu, [x], upstream)
    assert torch.equal(ours.nan_to_num(nan=-7.0), theirs.nan_to_num(nan=-7.0))
    assert ours[0] == 0 and ours[1] == 0 and ours[3] == 1      # inf*0 is not NaN; a NaN input passes


def test_relu_backward_layer_passes_inf_and_nan_as_pytorch_does():
    x, upstream = _relu_cases()
    _, cache = layers.relu_forward(x)
    ours, _ = layers.relu_backward(upstream, cache)
    (theirs,) = _torch_grad(torch.relu, [x], upstream)
    assert torch.equal(ours.nan_to_num(nan=-7.0), theirs.nan_to_num(nan=-7.0))


def test_maximum_selects_like_pytorch_with_ties_inf_and_nan():
    inf, nan = float("inf"), float("nan")
    a = torch.tensor([[1.0, 2.0, nan, 3.0], [0.0, -1.0, 5.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([2.0, 1.0, 1.0, 3.0], dtype=torch.float64)          # broadcast over rows
    upstream = torch.tensor([[inf, inf, 1.0, 1.0], [inf, -inf, 2.0, 4.0]], dtype=torch.float64)
    ours = _torch_grad(Maximum.apply, [a, b], upstream)
    theirs = _torch_grad(torch.maximum, [a, b], upstream)
    for o, t in zip(ours, theirs):
        assert torch.equal(o.nan_to_num(nan=-7.0), t.nan_to_num(nan=-7.0)), (o, t)


def test_mse_backward_does_not_overflow_in_float16():
    pred = torch.tensor([40000.0, -30000.0, 1.0, 0.5], dtype=torch.float16)
    target = torch.zeros(4, dtype=torch.float16)
    _, cache = layers.mse_forward(pred, target)
    ours = layers.mse_backward(cache)
    leaf = pred.clone().requires_grad_(True)
    F.mse_loss(leaf, target).backward()
    assert torch.isfinite(ours).all()
    assert torch.equal(ours, leaf.grad)

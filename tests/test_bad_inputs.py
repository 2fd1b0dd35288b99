"""Every bad input of issue 14 gets a clear error naming the argument and what to do, and NumPy
scalars are numbers."""
import numpy as np
import pytest
import torch

import gradlab
from gradlab import jacobian_by_columns, jacobian_by_rows, layers, numerical_grad
from gradlab.bptt import rnn_backward, rnn_forward
from gradlab.functions import LogSumExp

JACOBIANS = [jacobian_by_rows, jacobian_by_columns]


@pytest.mark.parametrize("jacobian", JACOBIANS, ids=lambda f: f.__name__)
def test_in_place_f_under_inference_mode(jacobian):
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    with torch.inference_mode():
        jac = jacobian(lambda v: v.mul_(3), x)
    assert torch.equal(jac, 3 * torch.eye(2, dtype=torch.float64))


@pytest.mark.parametrize("jacobian", JACOBIANS, ids=lambda f: f.__name__)
def test_numpy_inside_f_is_named(jacobian):
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    with pytest.raises(TypeError, match=rf"{jacobian.__name__}: f left torch.*must not convert x to NumPy.*"
                                        rf"torch.sin\(x\)"):
        jacobian(lambda v: torch.from_numpy(np.sin(v.numpy())), x)


@pytest.mark.parametrize("jacobian", JACOBIANS, ids=lambda f: f.__name__)
def test_item_inside_f_is_detected_not_a_silent_zero(jacobian):
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    with pytest.raises(ValueError, match=rf"{jacobian.__name__}: output 1 of f changes when x changes, yet "
                                         rf"autograd sees no dependence.*\.item\(\)"):
        jacobian(lambda v: torch.stack([2 * v[0], torch.tensor(v[1].item() ** 2)]), x)
    with pytest.raises(ValueError, match="output 0 of f changes"):
        jacobian(lambda v: torch.tensor([v[0].item(), v[1].item()]), x)
    # A truly constant output still gives zeros, without complaint.
    assert torch.equal(jacobian(lambda v: torch.ones(3, dtype=torch.float64), x), torch.zeros(3, 2, dtype=torch.float64))


@pytest.mark.parametrize("jacobian", JACOBIANS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("f", [torch.relu, lambda v: torch.clamp(v, min=0), torch.abs, lambda v: torch.relu(-v)],
                         ids=["relu", "clamp", "abs", "relu(-x)"])
def test_a_kink_with_subgradient_zero_is_not_mistaken_for_a_leak(jacobian, f):
    # At 0 these have derivative 0 (PyTorch's subgradient), so the row is zero although the output
    # moves on one side (or in opposite directions): a right Jacobian, not f leaving autograd.
    x = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64)
    expected = torch.autograd.functional.jacobian(f, x)
    assert torch.equal(jacobian(f, x), expected)


@pytest.mark.parametrize("make, words", [(lambda: torch.ones(2, 2).to_sparse(), "sparse_coo tensor.*to_dense"),
                                         (lambda: torch.ones(2, 2, device="meta"), "meta device.*CPU")])
def test_sparse_and_meta_tensors_are_refused_by_name(make, words):
    with pytest.raises(TypeError, match=f"jacobian_by_rows: x is a {words}" if "sparse" in words
                       else f"jacobian_by_rows: x is on the {words}"):
        jacobian_by_rows(torch.sin, make())
    with pytest.raises(TypeError, match="numerical_grad: input 0 is"):
        numerical_grad(lambda v: v.sum(), make())
    with pytest.raises(TypeError, match="relu_forward: x is"):
        layers.relu_forward(make())


def test_numpy_integers_are_integers():
    params = layers.init_mlp([np.int64(3), np.int32(4), 2], generator=torch.Generator().manual_seed(0))
    assert params["W1"].shape == (3, 4) and params["W2"].shape == (4, 2)
    x = torch.randn(2, 3, dtype=torch.float64)
    assert torch.allclose(LogSumExp.apply(x, np.int64(1)), torch.logsumexp(x, 1))
    g = torch.Generator().manual_seed(1)
    xs, h0 = torch.randn(1, 4, 2, generator=g), torch.zeros(1, 3)
    Wh, Wx, b = torch.randn(3, 3, generator=g), torch.randn(2, 3, generator=g), torch.zeros(3)
    trace = rnn_forward(xs, h0, Wx, Wh, b)
    cut = rnn_backward(trace, grad_last=torch.ones(1, 3), truncation=np.int64(2))
    same = rnn_backward(trace, grad_last=torch.ones(1, 3), truncation=2)
    assert torch.equal(cut.Wh, same.Wh)


def test_numpy_floats_are_numbers():
    W = torch.ones(2, 2, dtype=torch.float64)
    penalty, _ = layers.l2_penalty_forward(W, np.float32(0.5))
    assert penalty.item() == 2.0
    x = torch.randn(4, 3, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1])
    params = layers.init_mlp([3, 2], generator=torch.Generator().manual_seed(0))
    loss, _ = layers.mlp_loss_and_grads(x, labels, params, l2=np.float64(0.1))
    assert torch.isfinite(loss)
    assert gradlab.compare_tensors("np rtol", torch.ones(2), torch.ones(2), rtol=np.float32(1e-3)).ok

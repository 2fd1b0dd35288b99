"""gradlab.bptt: hand-written BPTT against autograd (full and truncated), shapes, and clear errors."""
import pytest
import torch

from gradlab import compare_tensors
from gradlab.bptt import RNNGrads, RNNTrace, rnn_backward, rnn_forward, train_truncated_by_hand


def make(B, T, I, H, seed=0, dtype=torch.float64, scale=0.8):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(B, T, I, generator=g, dtype=dtype)
    h0 = torch.randn(B, H, generator=g, dtype=dtype) * 0.5
    Wh = torch.randn(H, H, generator=g, dtype=dtype) * scale / H ** 0.5
    Wx = torch.randn(I, H, generator=g, dtype=dtype) / I ** 0.5
    b = torch.randn(H, generator=g, dtype=dtype) * 0.1
    return xs, h0, Wx, Wh, b


def autograd_run(xs, h0, Wx, Wh, b, truncation=None):
    """Reference: the recurrence in autograd, with h.detach() after every `truncation`-th step."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (xs, h0, Wx, Wh, b)]
    xs_, h0_, Wx_, Wh_, b_ = leaves
    h, states = h0_, []
    for t in range(1, xs.shape[1] + 1):
        h = torch.tanh(h @ Wh_ + xs_[:, t - 1] @ Wx_ + b_)
        h.retain_grad()
        states.append(h)
        if truncation is not None and t % truncation == 0:
            h = h.detach()
    return leaves, states


def assert_grads_match(grads, leaves, states, rtol=1e-10):
    for name, leaf in zip(("xs", "h0", "Wx", "Wh", "b"), leaves):
        mine = getattr(grads, name)
        ref = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        assert compare_tensors(name, mine, ref, rtol=rtol).ok
    ref_states = torch.stack([s.grad if s.grad is not None else torch.zeros_like(s) for s in states], dim=1)
    assert compare_tensors("states", grads.states, ref_states, rtol=rtol).ok


SHAPES = [(1, 1, 1, 1), (2, 1, 3, 4), (3, 5, 2, 4), (1, 12, 3, 2), (4, 7, 5, 6)]


@pytest.mark.parametrize("B,T,I,H", SHAPES)
def test_forward_matches_a_plain_loop_and_torch_rnn(B, T, I, H):
    xs, h0, Wx, Wh, b = make(B, T, I, H)
    trace = rnn_forward(xs, h0, Wx, Wh, b)
    assert isinstance(trace, RNNTrace)
    assert trace.states.shape == (B, T, H) and trace.steps == T
    assert not trace.states.requires_grad
    rnn = torch.nn.RNN(I, H, batch_first=True, nonlinearity="tanh").double()
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(Wh.T)       # nn.RNN stores the transposes
        rnn.weight_ih_l0.copy_(Wx.T)
        rnn.bias_ih_l0.copy_(b)
        rnn.bias_hh_l0.zero_()
        out, h_last = rnn(xs, h0.unsqueeze(0))
    assert compare_tensors("states", trace.states, out).ok
    assert compare_tensors("last", trace.last, h_last[0]).ok


@pytest.mark.parametrize("B,T,I,H", SHAPES)
def test_loss_on_last_state_matches_autograd(B, T, I, H):
    xs, h0, Wx, Wh, b = make(B, T, I, H, seed=1)
    g = torch.Generator().manual_seed(2)
    v = torch.randn(B, H, generator=g, dtype=torch.float64)
    leaves, states = autograd_run(xs, h0, Wx, Wh, b)
    (states[-1] * v).sum().backward()
    grads = rnn_backward(rnn_forward(xs, h0, Wx, Wh, b), grad_last=v)
    assert isinstance(grads, RNNGrads)
    assert_grads_match(grads, leaves, states)


@pytest.mark.parametrize("B,T,I,H", SHAPES)
def test_loss_on_every_state_matches_autograd(B, T, I, H):
    xs, h0, Wx, Wh, b = make(B, T, I, H, seed=3)
    target = torch.randn(B, T, H, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    leaves, states = autograd_run(xs, h0, Wx, Wh, b)
    hs = torch.stack(states, dim=1)
    (0.5 * ((hs - target) ** 2).sum()).backward()
    trace = rnn_forward(xs, h0, Wx, Wh, b)
    grads = rnn_backward(trace, trace.states - target)
    assert_grads_match(grads, leaves, states)


def test_grad_states_and_grad_last_add_up():
    xs, h0, Wx, Wh, b = make(2, 6, 3, 4, seed=5)
    g = torch.Generator().manual_seed(6)
    every = torch.randn(2, 6, 4, generator=g, dtype=torch.float64)
    last = torch.randn(2, 4, generator=g, dtype=torch.float64)
    leaves, states = autograd_run(xs, h0, Wx, Wh, b)
    ((torch.stack(states, dim=1) * every).sum() + (states[-1] * last).sum()).backward()
    grads = rnn_backward(rnn_forward(xs, h0, Wx, Wh, b), every, grad_last=last)
    assert_grads_match(grads, leaves, states)


@pytest.mark.parametrize("T,k", [(1, 1), (5, 1), (6, 2), (7, 3), (8, 8), (4, 10), (9, 4)])
@pytest.mark.parametrize("loss_on", ["last", "every"])
def test_truncation_matches_autograd_with_detach(T, k, loss_on):
    xs, h0, Wx, Wh, b = make(2, T, 3, 4, seed=7, scale=1.2)
    g = torch.Generator().manual_seed(8)
    v = torch.randn(2, T, 4, generator=g, dtype=torch.float64)
    leaves, states = autograd_run(xs, h0, Wx, Wh, b, truncation=k)
    trace = rnn_forward(xs, h0, Wx, Wh, b)
    if loss_on == "last":
        (states[-1] * v[:, -1]).sum().backward()
        grads = rnn_backward(trace, grad_last=v[:, -1], truncation=k)
    else:
        (torch.stack(states, dim=1) * v).sum().backward()
        grads = rnn_backward(trace, v, truncation=k)
    assert_grads_match(grads, leaves, states)


def test_truncation_changes_the_gradient_and_cuts_h0_off():
    xs, h0, Wx, Wh, b = make(1, 6, 2, 3, seed=9)
    trace = rnn_forward(xs, h0, Wx, Wh, b)
    v = torch.ones(1, 3, dtype=torch.float64)
    full = rnn_backward(trace, grad_last=v)
    cut = rnn_backward(trace, grad_last=v, truncation=2)
    assert torch.count_nonzero(cut.h0) == 0 and torch.count_nonzero(full.h0) > 0
    assert torch.count_nonzero(cut.states[:, :4]) == 0        # h_1..h_4 receive nothing
    assert torch.equal(cut.states[:, 4:], full.states[:, 4:])  # the last chunk is untouched
    assert not torch.allclose(cut.Wh, full.Wh)
    same = rnn_backward(trace, grad_last=v, truncation=6)      # k >= T: nothing is cut
    for a, c in zip((full.Wx, full.Wh, full.b, full.h0, full.xs),
                    (same.Wx, same.Wh, same.b, same.h0, same.xs)):
        assert torch.equal(a, c)


def test_step_norms_and_parameters():
    xs, h0, Wx, Wh, b = make(3, 5, 2, 4, seed=10)
    trace = rnn_forward(xs, h0, Wx, Wh, b)
    grads = rnn_backward(trace, grad_last=torch.ones(3, 4, dtype=torch.float64))
    norms = grads.step_norms
    assert norms.shape == (5,)
    expected = torch.stack([grads.states[:, t].norm() for t in range(5)])
    assert compare_tensors("norms", norms, expected).ok
    assert [p.shape for p in grads.parameters()] == [(2, 4), (4, 4), (4,)]


def test_float32_agrees_with_autograd_and_keeps_dtype():
    xs, h0, Wx, Wh, b = make(2, 4, 3, 5, seed=11, dtype=torch.float32)
    leaves, states = autograd_run(xs, h0, Wx, Wh, b)
    states[-1].sum().backward()
    grads = rnn_backward(rnn_forward(xs, h0, Wx, Wh, b), grad_last=torch.ones(2, 5))
    assert grads.Wh.dtype == torch.float32 and grads.xs.dtype == torch.float32
    assert_grads_match(grads, leaves, states, rtol=1e-5)


def test_inputs_requiring_grad_are_accepted_and_not_recorded():
    xs, h0, Wx, Wh, b = make(1, 3, 2, 2, seed=12)
    Wh.requires_grad_(True)
    trace = rnn_forward(xs, h0, Wx, Wh, b)
    assert not trace.states.requires_grad and trace.Wh.grad_fn is None


# --- errors ----------------------------------------------------------------------------------

def test_error_xs_without_batch_dimension():
    xs, h0, Wx, Wh, b = make(1, 3, 2, 4)
    with pytest.raises(ValueError, match=r"xs must have shape \(B, T, I\).*got \(3, 2\).*unsqueeze\(0\)"):
        rnn_forward(xs[0], h0, Wx, Wh, b)


def test_error_zero_steps():
    xs, h0, Wx, Wh, b = make(1, 3, 2, 4)
    with pytest.raises(ValueError, match=r"T = 0 time steps"):
        rnn_forward(xs[:, :0], h0, Wx, Wh, b)


def test_error_non_square_Wh():
    xs, h0, Wx, Wh, b = make(1, 3, 2, 4)
    with pytest.raises(ValueError, match=r"Wh must be square.*got \(4, 3\)"):
        rnn_forward(xs, h0, Wx, Wh[:, :3], b)


def test_error_h0_shape_names_expected_shape():
    xs, h0, Wx, Wh, b = make(2, 3, 2, 4)
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, H\) = \(2, 4\).*got \(4,\)"):
        rnn_forward(xs, h0[0], Wx, Wh, b)
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, H\) = \(2, 4\).*got \(2, 3\)"):
        rnn_forward(xs, h0[:, :3], Wx, Wh, b)


def test_error_Wx_shape_names_nn_rnn_layout():
    xs, h0, Wx, Wh, b = make(2, 3, 2, 4)
    with pytest.raises(ValueError, match=r"Wx must have shape \(I, H\) = \(2, 4\).*got \(4, 2\).*weight_ih_l0.*\.T"):
        rnn_forward(xs, h0, Wx.T, Wh, b)
    with pytest.raises(ValueError, match=r"Wx must have shape \(I, H\) = \(2, 4\).*got \(2, 3\)\.$"):
        rnn_forward(xs, h0, Wx[:, :3], Wh, b)


def test_error_b_shape():
    xs, h0, Wx, Wh, b = make(2, 3, 2, 4)
    with pytest.raises(ValueError, match=r"b must have shape \(H,\) = \(4,\).*got \(1, 4\)"):
        rnn_forward(xs, h0, Wx, Wh, b.unsqueeze(0))


def test_error_mixed_dtypes_and_integers():
    xs, h0, Wx, Wh, b = make(2, 3, 2, 4)
    with pytest.raises(TypeError, match=r"share one dtype.*Wh torch.float32"):
        rnn_forward(xs, h0, Wx, Wh.float(), b)
    with pytest.raises(TypeError, match=r"rnn_forward: b has dtype torch.int64"):
        rnn_forward(xs, h0, Wx, Wh, torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match=r"rnn_forward: xs must be a torch.Tensor, got list"):
        rnn_forward(xs.tolist(), h0, Wx, Wh, b)


def test_errors_in_backward_arguments():
    xs, h0, Wx, Wh, b = make(2, 3, 2, 4)
    trace = rnn_forward(xs, h0, Wx, Wh, b)
    with pytest.raises(ValueError, match=r"pass grad_states \(B, T, H\).*grad_last \(B, H\)"):
        rnn_backward(trace)
    with pytest.raises(ValueError, match=r"grad_states must have shape \(B, T, H\).*\(2, 3, 4\), got \(2, 4\)"):
        rnn_backward(trace, torch.ones(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"grad_last must have shape \(B, H\).*\(2, 4\), got \(2, 3, 4\)"):
        rnn_backward(trace, grad_last=torch.ones(2, 3, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"grad_last has dtype torch.float32 but the trace has torch.float64"):
        rnn_backward(trace, grad_last=torch.ones(2, 4))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"truncation must be a positive int"):
            rnn_backward(trace, grad_last=torch.ones(2, 4, dtype=torch.float64), truncation=bad)
    with pytest.raises(TypeError, match=r"trace must be the RNNTrace returned by rnn_forward, got tuple"):
        rnn_backward((xs, h0), grad_last=torch.ones(2, 4, dtype=torch.float64))


def test_errors_for_non_tensor_or_integer_upstream_gradients():
    xs, h0, Wx, Wh, b = make(2, 3, 2, 4)
    trace = rnn_forward(xs, h0, Wx, Wh, b)
    with pytest.raises(TypeError, match=r"rnn_backward: grad_states must be a torch.Tensor, got list"):
        rnn_backward(trace, [[0.0]])
    with pytest.raises(TypeError, match=r"rnn_backward: grad_last has dtype torch.int64.*float"):
        rnn_backward(trace, grad_last=torch.ones(2, 4, dtype=torch.long))


def test_non_contiguous_inputs_match_autograd():
    xs, h0, Wx, Wh, b = make(3, 4, 2, 5, seed=13)
    xs = xs.transpose(0, 1).contiguous().transpose(0, 1)      # (B, T, I) with time-major strides
    Wh = Wh.T.contiguous().T
    assert not xs.is_contiguous() and not Wh.is_contiguous()
    leaves, states = autograd_run(xs, h0, Wx, Wh, b)
    (torch.stack(states, dim=1) ** 2).sum().backward()
    trace = rnn_forward(xs, h0, Wx, Wh, b)
    assert_grads_match(rnn_backward(trace, 2 * trace.states), leaves, states)


@pytest.mark.parametrize("B,T,I,H", SHAPES)
def test_backward_matches_torch_rnn_with_transposed_weights(B, T, I, H):
    xs, h0, Wx, Wh, b = make(B, T, I, H, seed=14)
    dhs = torch.randn(B, T, H, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    rnn = torch.nn.RNN(I, H, batch_first=True, nonlinearity="tanh", dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(Wx.T)
        rnn.weight_hh_l0.copy_(Wh.T)
        rnn.bias_ih_l0.copy_(b)
        rnn.bias_hh_l0.zero_()
    xs_, h0_ = xs.clone().requires_grad_(), h0.clone().requires_grad_()
    out, _ = rnn(xs_, h0_.unsqueeze(0))
    out.backward(dhs)
    grads = rnn_backward(rnn_forward(xs, h0, Wx, Wh, b), dhs)
    assert compare_tensors("xs", grads.xs, xs_.grad).ok
    assert compare_tensors("h0", grads.h0, h0_.grad).ok
    assert compare_tensors("Wx", grads.Wx, rnn.weight_ih_l0.grad.T).ok
    assert compare_tensors("Wh", grads.Wh, rnn.weight_hh_l0.grad.T).ok
    assert compare_tensors("b, ih", grads.b, rnn.bias_ih_l0.grad).ok
    assert compare_tensors("b, hh", grads.b, rnn.bias_hh_l0.grad).ok


def autograd_train_truncated(xs, ys, Wx, Wh, b, k, lr, max_norm):
    params = [t.detach().clone().requires_grad_() for t in (Wx, Wh, b)]
    Wx, Wh, b = params
    opt = torch.optim.SGD(params, lr=lr)
    h = torch.zeros(xs.shape[0], Wh.shape[0], dtype=xs.dtype)
    losses = []
    for start in range(0, xs.shape[1], k):
        states = []
        for t in range(start, min(start + k, xs.shape[1])):
            h = torch.tanh(h @ Wh + xs[:, t] @ Wx + b)
            states.append(h)
        loss = ((torch.stack(states, 1) - ys[:, start:start + k]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        opt.step()
        h = h.detach()
        losses.append(loss.detach())
    return torch.stack(losses), Wx.detach(), Wh.detach(), b.detach()


@pytest.mark.parametrize("T,k,max_norm", [(7, 3, 0.05), (6, 2, 10.0), (5, 5, 0.1), (4, 1, 0.2), (3, 8, 1.0)])
def test_train_truncated_by_hand_matches_an_autograd_loop(T, k, max_norm):
    xs, h0, Wx, Wh, b = make(3, T, 2, 4, seed=16, scale=1.5)
    ys = torch.randn(3, T, 4, generator=torch.Generator().manual_seed(17), dtype=torch.float64)
    before = [t.clone() for t in (xs, ys, Wx, Wh, b)]
    mine = train_truncated_by_hand(xs, ys, Wx, Wh, b, k, 0.5, max_norm)
    for a, c in zip(before, (xs, ys, Wx, Wh, b)):
        assert torch.equal(a, c)                                   # inputs untouched
    losses, Wx_, Wh_, b_ = autograd_train_truncated(xs, ys, Wx, Wh, b, k, 0.5, max_norm)
    assert mine["losses"].shape == (-(-T // k),)
    for name, ref in (("losses", losses), ("Wx", Wx_), ("Wh", Wh_), ("b", b_)):
        assert compare_tensors(name, mine[name], ref, rtol=1e-10).ok
    assert not torch.allclose(mine["Wh"], Wh)


def test_train_truncated_by_hand_errors():
    xs, h0, Wx, Wh, b = make(2, 4, 2, 3)
    ys = torch.zeros(2, 4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"k must be a positive int.*got 0"):
        train_truncated_by_hand(xs, ys, Wx, Wh, b, 0, 0.1, 1.0)
    with pytest.raises(ValueError, match=r"ys must have shape \(B, T, H\) = \(2, 4, 3\), got \(2, 4\)"):
        train_truncated_by_hand(xs, ys[..., 0], Wx, Wh, b, 2, 0.1, 1.0)

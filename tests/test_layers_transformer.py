"""gradlab.layers: layer norm, batch norm, embedding and attention against PyTorch, in float64."""
import pytest
import torch
import torch.nn.functional as F

from gradlab import layers as L

DT = torch.float64


def _randn(*shape, seed=0):
    return torch.randn(*shape, dtype=DT, generator=torch.Generator().manual_seed(seed))


def _close(a, b, tol=1e-10):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert (a - b).abs().max().item() <= tol * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("n, d", [(4, 5), (1, 3), (3, 1)])
def test_layer_norm_matches_pytorch(n, d):
    x, g, b = _randn(n, d, seed=1), _randn(d, seed=2), _randn(d, seed=3)
    x, g, b = (t.clone().requires_grad_() for t in (x, g, b))
    ref = F.layer_norm(x, (d,), g, b, 1e-5)
    out, cache = L.layer_norm_forward(x.detach(), g.detach(), b.detach())
    _close(out, ref.detach())
    dout = _randn(n, d, seed=4)
    ref.backward(dout)
    dx, grads = L.layer_norm_backward(dout, cache)
    _close(dx, x.grad)
    _close(grads["gamma"], g.grad)
    _close(grads["beta"], b.grad)


def test_batch_norm_matches_pytorch_and_updates_running_stats_without_gradient():
    x, g, b = _randn(6, 4, seed=1), _randn(4, seed=2), _randn(4, seed=3)
    x, g, b = (t.clone().requires_grad_() for t in (x, g, b))
    rm_ref, rv_ref = torch.zeros(4, dtype=DT), torch.ones(4, dtype=DT)
    rm, rv = rm_ref.clone(), rv_ref.clone()
    ref = F.batch_norm(x, rm_ref, rv_ref, g, b, training=True, momentum=0.1, eps=1e-5)
    out, cache = L.batch_norm_forward(x.detach(), g.detach(), b.detach(), running_mean=rm, running_var=rv)
    _close(out, ref.detach())
    _close(rm, rm_ref)
    _close(rv, rv_ref)
    assert not rm.requires_grad and not rv.requires_grad
    dout = _randn(6, 4, seed=5)
    ref.backward(dout)
    dx, grads = L.batch_norm_backward(dout, cache)
    _close(dx, x.grad)
    _close(grads["gamma"], g.grad)
    _close(grads["beta"], b.grad)


def test_batch_norm_through_autograd_agrees_with_its_backward():
    x = _randn(5, 3, seed=7).requires_grad_()
    out, cache = L.batch_norm_forward(x, torch.ones(3, dtype=DT), torch.zeros(3, dtype=DT))
    dout = _randn(5, 3, seed=8)
    out.backward(dout)
    _close(L.batch_norm_backward(dout, cache)[0], x.grad)


@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.int16, torch.int8, torch.uint8])
def test_embedding_is_a_scatter_add_and_repeated_tokens_accumulate(dtype):
    W = _randn(6, 3, seed=1).requires_grad_()
    ids = torch.tensor([[1, 4, 1], [0, 1, 5]], dtype=dtype)
    ref = F.embedding(ids.long(), W)
    out, cache = L.embedding_forward(ids, W.detach())
    _close(out, ref.detach())
    dout = _randn(2, 3, 3, seed=2)
    ref.backward(dout)
    dids, grads = L.embedding_backward(dout, cache)
    assert dids is None
    _close(grads["W"], W.grad)
    _close(grads["W"][1], dout[0, 0] + dout[0, 2] + dout[1, 1])    # token 1 used three times
    assert grads["W"][2].abs().max() == 0 and grads["W"][3].abs().max() == 0


def test_embedding_matches_nn_embedding():
    emb = torch.nn.Embedding(5, 2, dtype=DT)
    with torch.no_grad():
        emb.weight.copy_(_randn(5, 2, seed=3))
    ids = torch.tensor([3, 3, 0])
    emb(ids).sum().backward()
    _, cache = L.embedding_forward(ids, emb.weight.detach())
    _close(L.embedding_backward(torch.ones(3, 2, dtype=DT), cache)[1]["W"], emb.weight.grad)


def _sdpa_case(t, s, d, dv, seed=0):
    q, k, v = _randn(t, d, seed=seed), _randn(s, d, seed=seed + 1), _randn(s, dv, seed=seed + 2)
    return [x.clone().requires_grad_() for x in (q, k, v)]


@pytest.mark.parametrize("t, s, causal, use_mask, save", [
    (4, 4, False, False, "probs"), (4, 4, True, False, "probs"), (5, 5, True, False, "logsumexp"),
    (3, 6, False, True, "probs"), (1, 1, False, False, "probs"), (1, 1, True, False, "logsumexp"),
    (4, 4, True, True, "logsumexp"),
])
def test_attention_matches_scaled_dot_product_attention(t, s, causal, use_mask, save):
    q, k, v = _sdpa_case(t, s, 3, 2)
    mask = None
    if use_mask:
        mask = torch.ones(t, s, dtype=torch.bool)
        mask[:, -1] = False
    ref_mask = mask
    if causal and mask is not None:
        ref_mask = mask & torch.ones(t, s, dtype=torch.bool).tril()
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=ref_mask,
                                         is_causal=causal and mask is None)
    out, cache = L.attention_forward(q.detach(), k.detach(), v.detach(), causal=causal, mask=mask, save=save)
    _close(out, ref.detach())
    dout = _randn(t, 2, seed=9)
    ref.backward(dout)
    dq, dk, dv = L.attention_backward(dout, cache)
    _close(dq, q.grad)
    _close(dk, k.grad)
    _close(dv, v.grad)
    assert ("probs" in cache) == (save == "probs") and ("lse" in cache) == (save == "logsumexp")


def test_masked_positions_get_exactly_zero_gradient():
    q, k, v = _sdpa_case(4, 4, 3, 2, seed=5)
    out, cache = L.attention_forward(q.detach(), k.detach(), v.detach(), causal=True)
    p = cache["probs"]
    assert (p.triu(1) == 0).all()
    dout = _randn(4, 2, seed=6)
    dq, dk, dv = L.attention_backward(dout, cache)
    # the last key is seen only by the last query; the first query sees only the first key
    assert torch.equal(dq[0], torch.zeros(3, dtype=DT))   # one key: softmax is constant 1
    ds = L.softmax_backward(dout @ v.detach().T, p)
    assert (ds.triu(1) == 0).all()


def test_softmax_backward_is_the_softmax_vjp():
    z = _randn(3, 5, seed=1).requires_grad_()
    g = _randn(3, 5, seed=2)
    torch.softmax(z, -1).backward(g)
    _close(L.softmax_backward(g, torch.softmax(z.detach(), -1)), z.grad)


@pytest.mark.parametrize("call, error, match", [
    (lambda: L.layer_norm_forward(torch.tensor(1.0, dtype=DT), _randn(1), _randn(1)), ValueError,
     "at least one dimension"),
    (lambda: L.layer_norm_forward(_randn(2, 3), _randn(4), _randn(3)), ValueError, r"gamma must have shape \(3,\)"),
    (lambda: L.layer_norm_forward(_randn(2, 3), _randn(3).float(), _randn(3)), TypeError, "gamma has dtype"),
    (lambda: L.layer_norm_forward(_randn(2, 3), _randn(3), _randn(3), eps=0), ValueError, "eps"),
    (lambda: L.batch_norm_forward(_randn(1, 3), _randn(3), _randn(3)), ValueError, "batch of 1"),
    (lambda: L.batch_norm_forward(_randn(2, 3), _randn(3), _randn(3), running_mean=_randn(3), running_var=_randn(3),
                                  momentum=None), ValueError, "momentum=None.*num_batches_tracked"),
    (lambda: L.batch_norm_forward(_randn(2, 3), _randn(3), _randn(3), momentum=1.5), ValueError, "momentum"),
    (lambda: L.embedding_forward(torch.tensor([0, 7]), _randn(5, 2)), ValueError, r"\[0, 5\)"),
    (lambda: L.embedding_forward(torch.tensor([-1]), _randn(5, 2)), ValueError, r"\[0, 5\)"),
    (lambda: L.embedding_forward(torch.tensor([0.0]), _randn(5, 2)), TypeError, "integer token ids"),
    (lambda: L.embedding_forward(torch.tensor([True]), _randn(5, 2)), TypeError, "mask, not ids"),
    (lambda: L.embedding_forward(torch.tensor([0]), _randn(5)), ValueError, r"\(V, D\)"),
    (lambda: L.attention_forward(_randn(2, 3), _randn(4, 3), _randn(4, 2), mask=torch.ones(2, 3).bool()),
     ValueError, r"mask must have shape \(2, 4\)"),
    (lambda: L.attention_forward(_randn(2, 3), _randn(2, 3), _randn(2, 2), mask=torch.ones(2, 2)),
     TypeError, "boolean"),
    (lambda: L.attention_forward(_randn(2, 3), _randn(2, 4), _randn(2, 2)), ValueError, "do not fit"),
    (lambda: L.attention_forward(_randn(2, 3), _randn(3, 3), _randn(2, 2)), ValueError, "do not fit"),
    (lambda: L.attention_forward(_randn(1, 2, 3), _randn(2, 3), _randn(2, 2)), ValueError, "same leading"),
    (lambda: L.attention_forward(_randn(2, 3), _randn(2, 3), _randn(2, 2),
                                 mask=torch.tensor([[False, False], [True, True]])), ValueError, "query 0"),
    (lambda: L.attention_forward(_randn(2, 3), _randn(2, 3), _randn(2, 2), save="all"), ValueError, "save"),
])
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_backward_rejects_a_wrong_upstream_shape():
    _, cache = L.layer_norm_forward(_randn(2, 3), _randn(3), _randn(3))
    with pytest.raises(ValueError, match="shape of out"):
        L.layer_norm_backward(_randn(3, 2), cache)
    _, cache = L.attention_forward(_randn(2, 3), _randn(2, 3), _randn(2, 2))
    with pytest.raises(ValueError, match="attention_backward"):
        L.attention_backward(_randn(2, 3), cache)

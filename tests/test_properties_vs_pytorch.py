"""Property tests (issue 25): gradlab.engine graphs and every gradlab.layers layer against PyTorch.

Hypothesis draws shapes (sizes 1 often), float64 or float32, a magnitude up to 1e4 (1e30 for
logits in float32 too), and plants NaN, +-inf and +-0 at random positions. The property: the output
and every gradient equal PyTorch's as IEEE numbers, NaN where PyTorch has NaN, the same
infinities, and close elsewhere (see ``match``).

Settings: derandomize=True (the same cases on every run), deadline=None, database=None,
max_examples as ``_CASES`` says per test: 200 Value graphs, 150 Tensor graphs, 60 cases for each of
the 11 layer tests (1,010 cases in all, about 10 s of one core).

Not compared: an infinity in attention's q or k. A row of scores that are all -inf makes
F.scaled_dot_product_attention's "safe softmax" return 0 where torch.softmax (and gradlab) give
NaN; a mask that hides every key is refused by name instead (tests/test_edges_round3.py).
"""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings, strategies as st

from gradlab import layers as L
from gradlab.engine import Tensor, Value, cross_entropy

_CASES = {"value": 200, "tensor": 150, "layer": 60}


def _settings(kind):
    return settings(max_examples=_CASES[kind], deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


DTYPES = st.sampled_from([torch.float64, torch.float32])
SIZES = st.sampled_from([1, 1, 2, 3, 5])
SPECIALS = [math.nan, math.inf, -math.inf, 0.0, -0.0]
_TOL = {torch.float64: 1e-9, torch.float32: 2e-4}


@st.composite
def arrays(draw, shape, dtype, specials=True, exponents=(0, 0, 1, 2, 4)):
    """A seeded normal tensor times 10**e; with specials, up to 3 entries set to NaN, +-inf or +-0."""
    g = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 32 - 1)))
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 10.0 ** draw(st.sampled_from(exponents))
    n = x.numel()
    if specials and n and draw(st.booleans()):
        flat = x.reshape(-1)
        for i in draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3)):
            flat[i] = draw(st.sampled_from(SPECIALS))
    return x.to(dtype)


def match(ours, ref, what="", strict=True, scale=1.0, exact=None):
    """Equal as IEEE numbers: the same shape and dtype, non-finite at the same places, and the finite
    entries within tol * (|ref| + max(scale, max|ref|)) (normwise: formulas differ in rounding order;
    ``scale`` is the size of the upstream gradient). With ``exact`` (the float64 result for a float32
    case), also within 10x PyTorch's own float32 error: where float32 cancels, both are noise.

    ``strict``: NaN, +inf and -inf each at the same places (elementwise rules, the engine). Where a
    reduction meets an infinity (layer norm with an infinite gamma) the formulas may give -inf
    where PyTorch's gives NaN: both say "no gradient here"; non-strict asks only for the same places.
    """
    assert ours is not None and ours.shape == ref.shape and ours.dtype == ref.dtype, (what, ours, ref)
    ours, ref = ours.detach(), ref.detach()
    if strict:
        assert torch.equal(ours.isnan(), ref.isnan()), (what, ours, ref)
        assert torch.equal(ours.isposinf(), ref.isposinf()) and torch.equal(ours.isneginf(), ref.isneginf()), \
            (what, ours, ref)
    finite = ref.isfinite()
    assert torch.equal(ours.isfinite(), finite), (what, ours, ref)
    o, r = ours[finite].double(), ref[finite].double()
    if r.numel():
        bound = _TOL[ref.dtype] * (r.abs() + max(scale, r.abs().max().item()))
        if exact is not None:
            bound = bound + 10 * (r - exact.detach()[finite].double()).abs()
        assert bool(((o - r).abs() <= bound).all()), (what, (o - r).abs().max().item(), r.abs().max().item())


def leaves(*tensors):
    return [t.clone().requires_grad_() for t in tensors]


def grads(out, inputs, dout):
    """PyTorch's gradients of ``out`` (seeded with ``dout``) w.r.t. ``inputs``; zeros if unused."""
    got = torch.autograd.grad(out, inputs, dout, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, got)]


# ------------------------------------------------------------------------------------------ Value

VALUE_NUMBERS = st.one_of(st.floats(-30, 30), st.sampled_from(SPECIALS + [1e200, -1e200, 1e-200, 1.0, -1.0]))
VALUE_OPS = ["add", "sub", "mul", "div", "rdiv", "neg", "relu", "tanh", "exp", "log", "pow"]
POWERS = [0, 0.5, -0.5, 1 / 3, -1, 2, 3]


@_settings("value")
@given(xs=st.lists(VALUE_NUMBERS, min_size=2, max_size=3),
       ops=st.lists(st.tuples(st.sampled_from(VALUE_OPS), st.sampled_from(POWERS)), min_size=1, max_size=6))
def test_value_graphs_match_pytorch_float64(xs, ops):
    def build(nodes):
        nodes = list(nodes)
        for i, (op, p) in enumerate(ops):
            u, v = nodes[i % len(nodes)], nodes[-1]
            w = {"add": lambda: u + v, "sub": lambda: u - v, "mul": lambda: u * v, "div": lambda: u / v,
                 "rdiv": lambda: 2.0 / v, "neg": lambda: -v, "relu": lambda: v.relu(), "tanh": lambda: v.tanh(),
                 "exp": lambda: v.exp(), "log": lambda: v.log(), "pow": lambda: v ** p}[op]()
            nodes.append(w)
        return nodes[-1] + nodes[0] * 0.5

    mine = [Value(x) for x in xs]
    out = build(mine)
    out.backward()
    ref_leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    ref = build(ref_leaves)
    ref_grads = grads(ref, ref_leaves, torch.ones((), dtype=torch.float64))
    match(torch.tensor(out.data, dtype=torch.float64), ref, "out")
    for v, g in zip(mine, ref_grads):
        match(torch.tensor(v.grad, dtype=torch.float64), g, "grad")


# ------------------------------------------------------------------------------------------ Tensor


@st.composite
def broadcast_shapes(draw):
    """Two shapes that broadcast: drop leading dims of either, set sizes to 1 at random."""
    full = draw(st.lists(SIZES, min_size=0, max_size=3))
    shapes = []
    for _ in range(2):
        keep = draw(st.integers(0, len(full)))
        shapes.append(tuple(1 if draw(st.booleans()) else n for n in full[len(full) - keep:]))
    return shapes


TENSOR_OPS = ["add", "sub", "mul", "div", "tanh", "exp", "log", "relu", "pow2", "pow-0.5", "sum0", "mean", "keep"]


def _tensor_op(op, u, v):
    is_engine = isinstance(v, Tensor)
    dim = v.data.dim() if is_engine else v.dim()
    if op in ("add", "sub", "mul", "div"):
        return {"add": u + v, "sub": u - v, "mul": u * v, "div": u / v}[op]
    if op == "pow2":
        return v ** 2
    if op == "pow-0.5":
        return v ** -0.5
    if op in ("tanh", "exp", "log", "relu"):
        return getattr(v, op)()
    if op == "sum0":
        return v.sum(0) if dim else v
    if op == "keep":
        return v.mean(keepdims=True) if is_engine else v.mean(dim=None, keepdim=True)
    return v.mean()


@_settings("tensor")
@given(shapes=broadcast_shapes(), dtype=DTYPES, ops=st.lists(st.sampled_from(TENSOR_OPS), min_size=1, max_size=6),
       data=st.data())
def test_tensor_graphs_match_pytorch(shapes, dtype, ops, data):
    a = data.draw(arrays(shapes[0], dtype, exponents=(0, 0, 1)))
    b = data.draw(arrays(shapes[1], dtype, exponents=(0, 0, 1)))

    def build(x, y):
        nodes = [x, y]
        for i, op in enumerate(ops):
            nodes.append(_tensor_op(op, nodes[i % len(nodes)], nodes[-1]))
        return nodes[-1]

    mine = [Tensor(a.clone()), Tensor(b.clone())]
    out = build(*mine)
    ref_leaves = leaves(a, b)
    ref = build(*ref_leaves)
    seed = data.draw(arrays(tuple(ref.shape), dtype, exponents=(0,)))
    match(out.data, ref, "out")
    if not out.requires_grad:
        return
    out.backward(seed)
    for m, g in zip(mine, grads(ref, ref_leaves, seed)):
        match(torch.zeros_like(g) if m.grad is None else m.grad, g, "grad")


@_settings("layer")
@given(n=SIZES, c=SIZES, dtype=DTYPES, data=st.data(), label_dtype=st.sampled_from([torch.uint8, torch.int16, torch.long]))
def test_engine_cross_entropy_matches_pytorch_on_large_logits(n, c, dtype, data, label_dtype):
    z = data.draw(arrays((n, c), dtype, exponents=(0, 2, 4, 30 if dtype == torch.float32 else 300)))
    labels = torch.tensor(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), dtype=label_dtype)
    mine = Tensor(z.clone())
    loss = cross_entropy(mine, labels)
    loss.backward()
    (leaf,) = leaves(z)
    ref = F.cross_entropy(leaf, labels.long())
    match(loss.data, ref, "loss")
    match(mine.grad, grads(ref, [leaf], torch.ones((), dtype=dtype))[0], "dlogits")


# ------------------------------------------------------------------------------------------ layers


def _finite_max(t):
    finite = t[t.isfinite()]
    return finite.abs().max().item() if finite.numel() else 0.0


def _check_layer(forward, backward, reference, inputs, dout, names, strict=True):
    """``forward(*inputs)`` and ``backward(dout, cache)`` against ``reference`` through autograd."""
    out, cache = forward(*[x.clone() for x in inputs])
    ref_leaves = leaves(*inputs)
    ref = reference(*ref_leaves)
    expected = [ref] + grads(ref, ref_leaves, dout)
    exact = [None] * len(expected)
    if dout.dtype == torch.float32:
        exact_leaves = leaves(*(x.double() for x in inputs))
        exact_ref = reference(*exact_leaves)
        exact = [exact_ref] + grads(exact_ref, exact_leaves, dout.double())
    scale = max(1.0, _finite_max(dout))
    for name, mine, e, x in zip(["out"] + names, [out, *backward(dout, cache)], expected, exact):
        match(mine, e, name, strict, scale, x)


def _dx_and_params(keys):
    return lambda result: [result[0]] + [result[1][k] for k in keys]


@_settings("layer")
@given(n=SIZES, d_in=SIZES, d_out=SIZES, dtype=DTYPES, data=st.data())
def test_linear_matches_pytorch(n, d_in, d_out, dtype, data):
    x, W, b, dout = (data.draw(arrays(s, dtype)) for s in ((n, d_in), (d_in, d_out), (d_out,), (n, d_out)))
    _check_layer(L.linear_forward, lambda d, c: _dx_and_params("Wb")(L.linear_backward(d, c)),
                 lambda x, W, b: F.linear(x, W.T, b), [x, W, b], dout, ["dx", "dW", "db"])


@_settings("layer")
@given(shape=st.lists(SIZES, min_size=1, max_size=3), name=st.sampled_from(["relu", "sigmoid", "tanh"]),
       dtype=DTYPES, data=st.data())
def test_activations_match_pytorch(shape, name, dtype, data):
    x, dout = data.draw(arrays(tuple(shape), dtype)), data.draw(arrays(tuple(shape), dtype))
    forward, backward = L.ACTIVATIONS[name]
    _check_layer(forward, lambda d, c: [backward(d, c)[0]], getattr(torch, name), [x], dout, ["dx"])


@_settings("layer")
@given(shape=st.lists(SIZES, min_size=1, max_size=3), loss=st.sampled_from(["mse", "bce"]), dtype=DTYPES,
       data=st.data())
def test_elementwise_losses_match_pytorch(shape, loss, dtype, data):
    pred = data.draw(arrays(tuple(shape), dtype, exponents=(0, 1, 4)))
    if loss == "mse":
        target = data.draw(arrays(tuple(shape), dtype))
        forward, backward, reference = L.mse_forward, L.mse_backward, F.mse_loss
    else:   # targets must be probabilities: NaN or values outside [0, 1] are refused
        target = data.draw(arrays(tuple(shape), dtype, specials=False)).sigmoid()
        forward, backward, reference = L.bce_with_logits_forward, L.bce_with_logits_backward, \
            F.binary_cross_entropy_with_logits
    value, cache = forward(pred, target)
    (leaf,) = leaves(pred)
    ref = reference(leaf, target)
    match(value, ref, "loss")
    match(backward(cache), grads(ref, [leaf], torch.ones((), dtype=dtype))[0], "dpred")


@_settings("layer")
@given(n=SIZES, c=SIZES, dtype=DTYPES, data=st.data(), label_dtype=st.sampled_from([torch.uint8, torch.int16, torch.long]))
def test_softmax_cross_entropy_matches_pytorch_on_large_logits(n, c, dtype, data, label_dtype):
    z = data.draw(arrays((n, c), dtype, exponents=(0, 2, 4, 30 if dtype == torch.float32 else 300)))
    labels = torch.tensor(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), dtype=label_dtype)
    loss, cache = L.softmax_cross_entropy_forward(z, labels)
    (leaf,) = leaves(z)
    ref = F.cross_entropy(leaf, labels.long())
    match(loss, ref, "loss")
    match(L.softmax_cross_entropy_backward(cache), grads(ref, [leaf], torch.ones((), dtype=dtype))[0], "dlogits")


@_settings("layer")
@given(sizes=st.lists(SIZES, min_size=2, max_size=4), n=SIZES, dtype=DTYPES,
       activation=st.sampled_from(["relu", "tanh", "sigmoid"]), l2=st.sampled_from([0.0, 0.1]), seed=st.integers(0, 99))
def test_mlp_loss_and_grads_match_pytorch(sizes, n, dtype, activation, l2, seed):
    g = torch.Generator().manual_seed(seed)
    params = L.init_mlp(sizes, generator=g, dtype=dtype)
    x = torch.randn(n, sizes[0], generator=g, dtype=dtype) * 10
    labels = torch.randint(0, sizes[-1], (n,), generator=g)
    loss, mine = L.mlp_loss_and_grads(x, labels, params, activation=activation, l2=l2)
    ref_params = {k: v.clone().requires_grad_() for k, v in params.items()}
    h = x
    depth = len(sizes) - 1
    for i in range(1, depth + 1):
        h = h @ ref_params[f"W{i}"] + ref_params[f"b{i}"]
        h = getattr(torch, activation)(h) if i < depth else h
    ref = F.cross_entropy(h, labels) + l2 * sum((ref_params[f"W{i}"] ** 2).sum() for i in range(1, depth + 1))
    match(loss, ref, "loss")
    for key, gr in zip(ref_params, grads(ref, list(ref_params.values()), torch.ones((), dtype=dtype))):
        match(mine[key], gr, key)


@_settings("layer")
@given(shape=st.lists(SIZES, min_size=1, max_size=4), dtype=DTYPES, data=st.data())
def test_layer_norm_of_any_shape_matches_pytorch(shape, dtype, data):
    shape = tuple(shape)
    d = shape[-1]
    x, dout = data.draw(arrays(shape, dtype, exponents=(0, 1, 3))), data.draw(arrays(shape, dtype))
    gamma, beta = data.draw(arrays((d,), dtype)), data.draw(arrays((d,), dtype))
    _check_layer(L.layer_norm_forward, lambda dd, c: _dx_and_params(["gamma", "beta"])(L.layer_norm_backward(dd, c)),
                 lambda x, g, b: F.layer_norm(x, (d,), g, b, 1e-5), [x, gamma, beta], dout, ["dx", "dgamma", "dbeta"],
                 strict=False)


@_settings("layer")
@given(n=st.sampled_from([1, 2, 3, 5]), d=SIZES, dtype=DTYPES, training=st.booleans(),
       momentum=st.sampled_from([0.1, 0.5, None]), data=st.data())
def test_batch_norm_matches_pytorch_in_both_modes(n, d, dtype, training, momentum, data):
    n = max(n, 2) if training else n
    x, dout = data.draw(arrays((n, d), dtype, exponents=(0, 1, 3))), data.draw(arrays((n, d), dtype))
    gamma, beta = data.draw(arrays((d,), dtype)), data.draw(arrays((d,), dtype))
    rm = data.draw(arrays((d,), dtype, specials=False))
    rv = data.draw(arrays((d,), dtype, specials=False)).abs() + 0.1
    bn = torch.nn.BatchNorm1d(d, eps=1e-5, momentum=momentum, dtype=dtype)
    with torch.no_grad():
        bn.running_mean.copy_(rm), bn.running_var.copy_(rv), bn.weight.copy_(gamma), bn.bias.copy_(beta)
    bn.train(training)
    mine_rm, mine_rv, count = rm.clone(), rv.clone(), torch.tensor(0)

    def forward(x, gamma, beta):
        return L.batch_norm_forward(x, gamma, beta, 1e-5, mine_rm, mine_rv, momentum, training=training,
                                    num_batches_tracked=count)

    def reference(x, gamma, beta):   # the output does not depend on the momentum
        return F.batch_norm(x, rm.to(x.dtype), rv.to(x.dtype), gamma, beta, training=training, eps=1e-5)

    def backward(dout, cache):
        dx, pgrads = L.batch_norm_backward(dout, cache)
        return dx, pgrads["gamma"], pgrads["beta"]

    _check_layer(forward, backward, reference, [x, gamma, beta], dout, ["dx", "dgamma", "dbeta"], strict=False)
    bn(x)   # the running statistics of one update in place, as nn.BatchNorm1d makes them
    match(mine_rm, bn.running_mean, "running_mean", strict=False)
    match(mine_rv, bn.running_var, "running_var", strict=False)
    assert count.item() == bn.num_batches_tracked.item()


@_settings("layer")
@given(ids_shape=st.lists(SIZES, min_size=0, max_size=2), v=SIZES, d=SIZES, dtype=DTYPES, data=st.data(),
       id_dtype=st.sampled_from([torch.uint8, torch.int16, torch.long]))
def test_embedding_matches_pytorch(ids_shape, v, d, dtype, data, id_dtype):
    n = math.prod(ids_shape)
    ids = torch.tensor(data.draw(st.lists(st.integers(0, v - 1), min_size=n, max_size=n)), dtype=id_dtype)
    ids = ids.reshape(ids_shape)
    W, dout = data.draw(arrays((v, d), dtype)), data.draw(arrays((*ids_shape, d), dtype))
    out, cache = L.embedding_forward(ids, W)
    (leaf,) = leaves(W)
    ref = F.embedding(ids.long(), leaf)
    match(out, ref, "out")
    match(L.embedding_backward(dout, cache)[1]["W"], grads(ref, [leaf], dout)[0], "dW")


@_settings("layer")
@given(lead=st.lists(SIZES, min_size=0, max_size=2), t=SIZES, s=SIZES, d=SIZES, dv=SIZES, dtype=DTYPES,
       causal=st.booleans(), use_mask=st.booleans(), use_padding=st.booleans(),
       save=st.sampled_from(["probs", "logsumexp"]), data=st.data())
def test_attention_matches_sdpa(lead, t, s, d, dv, dtype, causal, use_mask, use_padding, save, data):
    lead = tuple(lead)
    # q and k: NaN but no infinity (a row of -inf scores: SDPA's "safe softmax" gives 0; see the docstring)
    q = data.draw(arrays((*lead, t, d), dtype, exponents=(0, 1, 2))).nan_to_num(posinf=math.nan, neginf=math.nan)
    k = data.draw(arrays((*lead, s, d), dtype, exponents=(0, 1, 2))).nan_to_num(posinf=math.nan, neginf=math.nan)
    v, dout = data.draw(arrays((*lead, s, dv), dtype)), data.draw(arrays((*lead, t, dv), dtype))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 10 ** 6)))
    mask = (torch.rand(t, s, generator=g) < 0.7) if use_mask else None
    padding = (torch.rand(*lead[:1], s, generator=g) < 0.3) if use_padding else None
    keep = torch.ones(*lead, t, s, dtype=torch.bool)
    if mask is not None:
        keep = keep & mask
    if padding is not None:
        keep = keep & ~padding.reshape(*lead[:1], *([1] * len(lead)), s)
    if causal:
        keep = keep & torch.ones(t, s, dtype=torch.bool).tril()
    if not bool(keep.any(-1).all()):   # a query that sees no key is refused, by name
        with pytest.raises(ValueError, match="hide every key from query"):
            L.attention_forward(q, k, v, causal=causal, mask=mask, key_padding_mask=padding, save=save)
        return
    _check_layer(lambda q, k, v: L.attention_forward(q, k, v, causal=causal, mask=mask, key_padding_mask=padding,
                                                     save=save),
                 L.attention_backward, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=keep),
                 [q, k, v], dout, ["dq", "dk", "dv"], strict=False)


@_settings("layer")
@given(shape=st.lists(SIZES, min_size=1, max_size=3), dtype=DTYPES, data=st.data())
def test_softmax_backward_is_the_vjp_of_pytorchs_softmax(shape, dtype, data):
    z = data.draw(arrays(tuple(shape), dtype, exponents=(0, 1, 2)))
    dp = data.draw(arrays(tuple(shape), dtype))
    (leaf,) = leaves(z)
    p = torch.softmax(leaf, -1)
    match(L.softmax_backward(dp, p.detach()), grads(p, [leaf], dp)[0], "dz")

"""Property tests of gradlab.compare: right gradients never fail, wrong elements are always caught.

Hypothesis draws the sizes, a seed for the values and a magnitude; the gradient is the weight
gradient of a linear layer, ``x.T @ dY``, computed in three orders (and through autograd). In half
precision, two computations are refused (see gradlab.checking); the property there is that a
half-precision value rounded once from the float32 result agrees with it. Settings: derandomize=True (the
same cases on every run), deadline=None, max_examples from ``_EXAMPLES``.
"""
import contextlib
import io

import pytest
import torch
from hypothesis import given, settings, strategies as st

import gradlab
from gradlab.checking import RTOL

_EXAMPLES = 250
_SETTINGS = settings(max_examples=_EXAMPLES, deadline=None, derandomize=True, database=None)
DTYPES = [torch.float64, torch.float32]
HALF = [torch.float16, torch.bfloat16]


@st.composite
def problems(draw):
    n = draw(st.integers(1, 32))      # the reduced dimension (a batch)
    k = draw(st.integers(1, 8))
    m = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    exponent = draw(st.integers(-6, 6))
    return n, k, m, seed, exponent


def _inputs(problem, dtype):
    n, k, m, seed, exponent = problem
    g = torch.Generator().manual_seed(seed)
    # Half precision has a narrow range: keep products of magnitudes inside it.
    exponent = max(min(exponent, 2), -2) if dtype in (torch.float16, torch.bfloat16) else exponent
    x = (torch.randn(n, k, generator=g, dtype=torch.float64) * 10.0 ** exponent).to(dtype)
    dy = torch.randn(n, m, generator=g, dtype=torch.float64).to(dtype)
    return x, dy


def _three_orders(x, dy):
    by_matmul = x.T @ dy
    by_products = (x[:, :, None] * dy[:, None, :]).flip(0).sum(0)      # rounded products, reversed
    running = torch.zeros_like(by_matmul)
    for i in range(x.shape[0]):                                           # one rounding per step
        running = running + x[i][:, None] * dy[i][None, :]
    return by_matmul, by_products, running


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@_SETTINGS
@given(problem=problems())
def test_a_right_gradient_computed_in_another_order_never_fails(dtype, problem):
    with contextlib.redirect_stdout(io.StringIO()):
        _right_gradients_agree(dtype, problem)


def _right_gradients_agree(dtype, problem):
    x, dy = _inputs(problem, dtype)
    a, b, c = _three_orders(x, dy)
    assert gradlab.compare_tensors("matmul vs products", b, a, raise_on_mismatch=False).ok
    assert gradlab.compare_tensors("matmul vs loop", c, a, raise_on_mismatch=False).ok
    # Through autograd: the manual gradient against .grad of a leaf of the same dtype.
    w = torch.zeros(x.shape[1], dy.shape[1], dtype=dtype, requires_grad=True)
    ((x @ w) * dy).sum().backward()
    assert gradlab.compare("dW", c, w, raise_on_mismatch=False).ok


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@_SETTINGS
@given(problem=problems(), pick=st.integers(0, 10 ** 6),
       error=st.sampled_from(["sign", "zero", "double", "half", "two percent"]),
       floor_exponent=st.floats(0.0, 1.0))
def test_a_wrong_element_above_the_noise_floor_is_caught(dtype, problem, pick, error, floor_exponent):
    with contextlib.redirect_stdout(io.StringIO()):
        _planted_error_is_caught(dtype, problem, pick, error, floor_exponent)


def _planted_error_is_caught(dtype, problem, pick, error, floor_exponent):
    # The noise floor: 100 * RTOL of the largest element, i.e. 1e-8 in float64 and 1e-3 in float32.
    x, dy = _inputs(problem, dtype)
    reference = (x.double().T @ dy.double()).to(dtype)
    largest = reference.abs().max()
    if largest == 0:
        return
    # Plant an element between the floor and the largest (log-uniform), then make it wrong.
    floor = 100 * RTOL[dtype]
    flat = reference.reshape(-1).clone()
    i = pick % flat.numel()
    magnitude = largest * floor ** (1 - floor_exponent)
    flat[i] = magnitude if flat[i] >= 0 else -magnitude
    expected = flat.reshape(reference.shape)
    wrong = expected.clone().reshape(-1)
    wrong[i] = {"sign": -wrong[i], "zero": 0.0 * wrong[i], "double": 2 * wrong[i], "half": wrong[i] / 2,
                "two percent": wrong[i] * 1.02}[error]
    result = gradlab.compare_tensors("planted", wrong.reshape(reference.shape), expected, raise_on_mismatch=False)
    assert not result.ok, (error, float(magnitude / largest))


@pytest.mark.parametrize("dtype", HALF, ids=str)
@_SETTINGS
@given(problem=problems())
def test_a_half_precision_gradient_rounded_once_agrees_with_float32(dtype, problem):
    with contextlib.redirect_stdout(io.StringIO()):
        x, dy = _inputs(problem, dtype)
        x, dy = x.float(), dy.float()          # half-precision values, float32 arithmetic
        reference = x.T @ dy
        assert gradlab.compare_tensors("rounded once", reference.to(dtype), reference, raise_on_mismatch=False).ok
        w = torch.zeros(x.shape[1], dy.shape[1], requires_grad=True)
        ((x @ w) * dy).sum().backward()
        assert gradlab.compare("dW", reference.to(dtype), w, raise_on_mismatch=False).ok
        # ...and a wrong one is still caught: one element off by its own size.
        wrong = reference.to(dtype).reshape(-1).clone()
        i = int(reference.abs().argmax())
        wrong[i] = 2 * wrong[i] if wrong[i] != 0 else 1.0
        assert not gradlab.compare_tensors("wrong", wrong.reshape(reference.shape), reference,
                                           raise_on_mismatch=False).ok

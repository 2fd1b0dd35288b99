"""gradlab.numerical_grad: accuracy against autograd, any number and shape of inputs, clear errors."""
import math

import pytest
import torch

from gradlab import compare_tensors, numerical_grad


def test_matches_autograd_for_several_inputs_of_different_shapes():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn((), generator=g, dtype=torch.float64, requires_grad=True)

    def f(a, b, c):
        return (torch.tanh(a @ b) * c).sum() + (b ** 3).mean()

    f(a, b, c).backward()
    ga, gb, gc = numerical_grad(f, a, b, c)
    assert ga.shape == a.shape and gb.shape == b.shape and gc.shape == c.shape
    for name, num, t in (("a", ga, a), ("b", gb, b), ("c", gc, c)):
        assert compare_tensors(name, num, t.grad, rtol=1e-7).ok


def test_returns_float64_even_for_float32_inputs():
    x = torch.tensor([0.5, -1.5])
    (gx,) = numerical_grad(lambda v: (v ** 2).sum(), x)
    assert gx.dtype == torch.float64
    assert torch.allclose(gx, torch.tensor([1.0, -3.0], dtype=torch.float64), atol=1e-8)


def test_documented_accuracy_on_a_smooth_function():
    x = torch.linspace(-2, 2, 7, dtype=torch.float64)
    (gx,) = numerical_grad(lambda v: torch.exp(v).sum(), x)
    rel = ((gx - torch.exp(x)).abs() / torch.exp(x)).max().item()
    assert rel < 1e-8


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inputs_are_not_modified_even_while_f_runs(dtype):
    x = torch.tensor([1.0, 2.0], dtype=dtype)   # float64: no dtype conversion makes the copy for us
    seen = []

    def f(v):
        seen.append(x.tolist())                  # the caller's tensor, observed during every call
        return (v ** 2).sum()

    numerical_grad(f, x)
    assert x.tolist() == [1.0, 2.0]
    assert all(s == [1.0, 2.0] for s in seen) and len(seen) == 5   # 1 check + 2 calls per element


def test_f_working_in_place_does_not_corrupt_the_estimate():
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    (g,) = numerical_grad(lambda v: v.mul_(v).sum(), x)   # v**2, computed in place
    assert compare_tensors("in place", g, 2 * x, rtol=1e-8).ok
    assert x.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("make", [lambda t: t.T, lambda t: t[:, ::2], lambda t: t[:1, :1].expand(3, 4)],
                         ids=["transposed", "strided", "expanded"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_non_contiguous_inputs(make, dtype):
    base = torch.arange(12.0, dtype=dtype).reshape(3, 4) / 7
    x = make(base)
    w = torch.linspace(-1.0, 1.0, x.numel(), dtype=torch.float64).reshape(x.shape)
    (g,) = numerical_grad(lambda v: (w * torch.sin(v)).sum(), x)
    assert g.shape == x.shape
    assert compare_tensors("strided", g, w * torch.cos(x.double()), rtol=1e-8).ok


def test_empty_input_gives_an_empty_gradient():
    (g,) = numerical_grad(lambda v: v.sum() + 1.0, torch.zeros(0, 3))
    assert g.shape == (0, 3) and g.dtype == torch.float64


def test_at_a_kink_gives_the_average_slope():
    (g,) = numerical_grad(lambda v: torch.relu(v).sum(), torch.tensor([0.0]))
    assert math.isclose(g.item(), 0.5, abs_tol=1e-9)


def test_non_scalar_f_is_rejected_with_its_shape():
    with pytest.raises(ValueError, match=r"f must return a scalar.*shape \(3,\).*sum"):
        numerical_grad(lambda v: v * 2, torch.ones(3))


def test_non_floating_input_is_rejected():
    with pytest.raises(TypeError, match="input 1 has dtype torch.int64.*float"):
        numerical_grad(lambda a, b: (a * b).sum(), torch.ones(2), torch.tensor([1, 2]))


def test_bad_arguments():
    with pytest.raises(TypeError, match="must be a torch.Tensor, got list"):
        numerical_grad(lambda v: v.sum(), [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one input"):
        numerical_grad(lambda: torch.tensor(1.0))
    for eps in (0, -1e-6, float("inf"), float("nan"), "1e-6", True):
        with pytest.raises(ValueError, match="eps must be a positive number"):
            numerical_grad(lambda v: v.sum(), torch.ones(1), eps=eps)
    with pytest.raises(TypeError, match="f must be a function"):
        numerical_grad(3, torch.ones(1))
    with pytest.raises(TypeError, match="value returned by f must be a torch.Tensor"):
        numerical_grad(lambda v: 1.0, torch.ones(1))
    with pytest.raises(TypeError, match="input 0 is complex"):
        numerical_grad(lambda v: v.abs().sum(), torch.ones(2, dtype=torch.complex64))


def test_float32_tensor_captured_by_f_gets_a_hint():
    W32 = torch.ones(2, 3)   # float32, while f receives float64 copies of x
    with pytest.raises(RuntimeError) as info:
        numerical_grad(lambda v: (v @ W32).sum(), torch.ones(4, 2))
    assert any("float64 copies of the inputs" in note and ".double()" in note
               for note in getattr(info.value, "__notes__", []))
    with pytest.raises(RuntimeError, match="cannot be multiplied") as other:   # other errors: untouched
        numerical_grad(lambda v: (v @ torch.ones(3, 1, dtype=torch.float64)).sum(), torch.ones(4, 2))
    assert not getattr(other.value, "__notes__", [])


# ---- a step relative to the input, divided by the step actually taken --------------------------

@pytest.mark.parametrize("scale", [1e-8, 1e-4, 1.0, 1e3, 1e6, 1e9, 1e10, 1e12])
def test_derivative_of_a_sum_is_one_at_every_scale(scale):
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(6, generator=g, dtype=torch.float64) + 0.5) * scale
    (gx,) = numerical_grad(lambda v: v.sum(), x)
    assert (gx - 1).abs().max().item() < 1e-6


def test_mixed_magnitudes_and_zeros_in_one_input():
    x = torch.tensor([1e12, 1e-8, 0.0, -3.0], dtype=torch.float64)
    (gx,) = numerical_grad(lambda v: v.sum(), x)
    assert (gx - 1).abs().max().item() < 1e-6
    (gz,) = numerical_grad(lambda v: (v ** 2).sum(), torch.zeros(3, dtype=torch.float64))
    assert gz.abs().max().item() < 1e-9


@pytest.mark.parametrize("scale", [1e-8, 1e-3, 1.0, 1e3])
def test_relative_accuracy_of_a_cubic_at_every_scale(scale):
    x = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) * scale
    (gx,) = numerical_grad(lambda v: (v ** 3).sum(), x)
    exact = 3 * x ** 2
    assert ((gx - exact).abs() / exact.abs()).max().item() < 1e-8


def test_non_finite_inputs_are_refused_with_their_position():
    with pytest.raises(ValueError, match=r"input 1 holds 1 non-finite value\(s\) \(nan at \[0, 1\]\)"):
        numerical_grad(lambda a, b: (a * b).sum(), torch.ones(2, 2), torch.tensor([[1.0, math.nan]]))


def test_numpy_scalar_eps_is_accepted():
    np = pytest.importorskip("numpy")
    (gx,) = numerical_grad(lambda v: (v ** 2).sum(), torch.tensor([1.0, 2.0]), eps=np.float32(1e-6))
    assert torch.allclose(gx, torch.tensor([2.0, 4.0], dtype=torch.float64), rtol=1e-6)

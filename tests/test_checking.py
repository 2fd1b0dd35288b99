"""gradlab.compare and gradlab.compare_tensors: agreement, disagreement, stable rows, clear errors."""
import pytest
import torch

import gradlab
from gradlab.checking import RTOL


def _leaf(values, dtype=torch.float32):
    x = torch.tensor(values, dtype=dtype, requires_grad=True)
    (x ** 2).sum().backward()
    return x  # x.grad == 2x


def test_agreeing_gradient_prints_one_stable_row(capsys):
    x = _leaf([1.0, -2.0, 3.0])
    result = gradlab.compare("dx", 2 * x.detach(), x)
    out = capsys.readouterr().out
    assert out == "dx                 (3,)         ok        within rtol 1e-05\n"
    assert result.ok and bool(result)
    assert result.rel_error == 0.0


def test_tolerance_scales_with_magnitude():
    # Entries near 1e9: a float32 rounding error of ~64 is relative 2e-8, which must pass.
    big = torch.tensor([1e9, 3e9])
    assert gradlab.compare_tensors("big", big + 64, big).ok
    # ...while the same absolute error on values near 1 is a real mismatch.
    with pytest.raises(AssertionError):
        gradlab.compare_tensors("small", torch.tensor([1.0, 3.0]) + 64, torch.tensor([1.0, 3.0]))


def test_mismatch_raises_naming_tensor_shapes_and_worst_element():
    x = _leaf([[1.0, 2.0], [3.0, 4.0]])
    wrong = 2 * x.detach()
    wrong[1, 0] += 1.0
    with pytest.raises(AssertionError) as info:
        gradlab.compare("dW", wrong, x)
    msg = str(info.value)
    assert "compare('dW')" in msg
    assert "manual (2, 2)" in msg and "dW.grad (autograd) (2, 2)" in msg
    assert "worst element [1, 0]: manual = 7, dW.grad (autograd) = 6" in msg
    assert "raise_on_mismatch=False" in msg


def test_mismatch_without_raising_reports_one_significant_digit(capsys):
    x = _leaf([1.0, 2.0])
    result = gradlab.compare("half", x.detach(), x, raise_on_mismatch=False)
    assert not result.ok
    assert capsys.readouterr().out.rstrip().endswith("MISMATCH  rel. error = 5.0e-01 > 1e-05")


def test_float64_uses_tighter_tolerance():
    x = _leaf([1.0, 2.0], dtype=torch.float64)
    assert gradlab.compare("ok64", 2 * x.detach() * (1 + 1e-12), x).ok
    with pytest.raises(AssertionError):
        gradlab.compare("off64", 2 * x.detach() * (1 + 1e-7), x)
    assert RTOL[torch.float64] < RTOL[torch.float32]


def test_rtol_override_and_validation():
    a, b = torch.tensor([1.0]), torch.tensor([1.001])
    assert gradlab.compare_tensors("loose", a, b, rtol=1e-2).ok
    assert not gradlab.compare_tensors("tight", a, b, rtol=1e-4, raise_on_mismatch=False).ok
    for bad in (0, -1e-3, float("inf"), float("nan"), "1e-3", True, [1e-3]):
        with pytest.raises(ValueError, match=r"rtol must be positive and finite.*got .*RTOL"):
            gradlab.compare_tensors("bad", a, b, rtol=bad)


def test_nan_on_both_sides_is_never_ok_and_says_so(capsys):
    nan = torch.tensor([float("nan"), 1.0])
    result = gradlab.compare_tensors("both nan", nan, nan.clone(), raise_on_mismatch=False)
    assert not result.ok and not result
    assert capsys.readouterr().out.rstrip().endswith("MISMATCH  NaN on both sides (1 of 2): NaN confirms nothing")
    with pytest.raises(AssertionError, match="NaN on both sides"):
        gradlab.compare_tensors("both nan", nan, nan.clone())
    all_nan = torch.full((3,), float("nan"))
    with pytest.raises(AssertionError, match=r"(?s)NaN on both sides \(3 of 3\).*never a confirmation"):
        gradlab.compare_tensors("all nan", all_nan, all_nan.clone())
    with pytest.raises(AssertionError):
        gradlab.compare_tensors("one nan", nan, torch.tensor([0.0, 1.0]))


def test_nan_on_both_sides_of_compare_fails():
    x = torch.tensor([1.0, -1.0], requires_grad=True)
    torch.sqrt(x - 2).sum().backward()                      # NaN gradient everywhere
    with pytest.raises(AssertionError, match="NaN on both sides"):
        gradlab.compare("x", torch.full((2,), float("nan")), x)


def test_nan_or_inf_against_a_number_is_named_plainly(capsys):
    inf, nan = float("inf"), float("nan")
    assert gradlab.compare_tensors("same inf", torch.tensor([inf, 1.0]), torch.tensor([inf, 1.0])).ok
    capsys.readouterr()
    cases = (([inf, 1.0], [2.0, 1.0], "manual value is inf where a number is expected (1 of 2)"),
             ([nan, 1.0], [2.0, 1.0], "manual value is NaN (1 of 2)"),
             ([2.0, 1.0], [nan, 1.0], "expected is NaN (1 of 2)"),
             ([2.0, 1.0], [2.0, -inf], "expected is inf (1 of 2)"),
             ([-inf, 1.0], [inf, 1.0], "manual value is inf where a number is expected (1 of 2)"))
    for manual, expected, words in cases:
        result = gradlab.compare_tensors("bad", torch.tensor(manual), torch.tensor(expected), raise_on_mismatch=False)
        assert not result.ok and result.rel_error == inf and result.max_abs_error == inf
        assert result.problem == words
        line = capsys.readouterr().out.rstrip()
        assert line.endswith("MISMATCH  " + words) and len(line) <= 100


def test_worst_element_of_non_contiguous_tensors():
    expected = torch.arange(6.0).reshape(2, 3).T          # (3, 2), not contiguous
    manual = expected.contiguous().clone()
    manual[2, 0] += 10.0
    with pytest.raises(AssertionError, match=r"worst element \[2, 0\]: manual = 12, expected = 2 "):
        gradlab.compare_tensors("t", manual, expected)


def test_scalar_and_empty_tensors():
    x = torch.tensor(3.0, requires_grad=True)
    (x * x).backward()
    assert gradlab.compare("scalar", torch.tensor(6.0), x).ok
    assert gradlab.compare_tensors("empty", torch.zeros(0, 3), torch.zeros(0, 3)).ok


def test_returned_comparison_is_not_echoed_in_notebooks(capsys):
    result = gradlab.compare_tensors("a", torch.ones(2), torch.ones(2))
    from IPython.core.formatters import DisplayFormatter

    assert capsys.readouterr().out == result.row() + "\n"   # printed once, when the check ran
    # What IPython shows when a cell ends with the result: nothing at all (no second copy of the row).
    assert DisplayFormatter().format(result) == ({}, {})
    assert capsys.readouterr().out == ""
    assert repr(result) == result.row()


# ---- clear errors -----------------------------------------------------------------------------

def test_shape_mismatch_names_both_shapes_and_what_to_do():
    x = _leaf([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"manual value has shape \(1, 3\) but x.grad \(autograd\) has shape \(3,\).*sum over broadcast"):
        gradlab.compare("x", torch.ones(1, 3), x)


def test_grad_none_on_leaf_says_call_backward():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"x.grad is None.*call \.backward\(\)"):
        gradlab.compare("x", torch.ones(2), x)


def test_grad_none_on_non_leaf_says_retain_grad(recwarn):
    x = torch.ones(2, requires_grad=True)
    h = x * 3
    h.sum().backward()
    with pytest.raises(ValueError, match=r"h.grad is None.*non-leaf.*retain_grad\(\)"):
        gradlab.compare("h", torch.ones(2), h)
    assert not [w for w in recwarn if "non-leaf" in str(w.message)]  # no torch warning leaks


def test_grad_none_without_requires_grad_says_so():
    with pytest.raises(ValueError, match="does not require grad.*requires_grad=True"):
        gradlab.compare("c", torch.ones(2), torch.ones(2))


def test_retained_non_leaf_is_compared():
    x = torch.ones(2, requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h ** 2).sum().backward()
    assert gradlab.compare("h", 2 * h.detach(), h).ok


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_non_floating_manual_value_is_rejected(dtype):
    x = _leaf([1.0, 2.0])
    with pytest.raises(TypeError, match=f"dtype {dtype}.*floating-point"):
        gradlab.compare("x", torch.tensor([2, 4]).to(dtype), x)


def test_non_tensor_inputs_are_rejected():
    x = _leaf([1.0, 2.0])
    with pytest.raises(TypeError, match="must be a torch.Tensor, got list"):
        gradlab.compare("x", [2.0, 4.0], x)
    with pytest.raises(TypeError, match="must be a torch.Tensor, got float"):
        gradlab.compare("x", torch.ones(2), 1.0)
    with pytest.raises(TypeError, match="name must be a string"):
        gradlab.compare_tensors(3, torch.ones(1), torch.ones(1))
    with pytest.raises(TypeError, match="name must be a string.*got int"):
        gradlab.compare(3, torch.ones(2), x)


def test_non_floating_or_complex_reference_is_rejected():
    with pytest.raises(TypeError, match=r"compare\('a'\): expected has dtype torch.int64.*float"):
        gradlab.compare_tensors("a", torch.ones(2), torch.ones(2, dtype=torch.long))
    with pytest.raises(TypeError, match=r"compare\('a'\): the manual value is complex"):
        gradlab.compare_tensors("a", torch.ones(2, dtype=torch.complex64), torch.ones(2))


# ---- hints for the common mistakes ------------------------------------------------------------

def test_grad_of_two_backward_passes_says_zero_the_gradient():
    x = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    for _ in range(3):
        (x ** 2).sum().backward()          # three passes: .grad holds 3 * 2x
    with pytest.raises(AssertionError, match=r"(?s)exactly 3 times the manual value: either the derivation "
                                             r"misses a factor of 3, or backward ran 3 times.*zero the gradient"):
        gradlab.compare("x", 2 * x.detach(), x)


def test_wrong_sign_and_extra_factor_are_named():
    x = _leaf([1.0, -2.0, 3.0], dtype=torch.float64)
    with pytest.raises(AssertionError, match="wrong sign everywhere"):
        gradlab.compare("x", -2 * x.detach(), x)
    with pytest.raises(AssertionError, match="exactly 2 times x.grad"):
        gradlab.compare("x", 4 * x.detach(), x)


def test_swapped_arguments_are_named_as_swapped():
    x = _leaf([1.0, 2.0])
    manual = 2 * x.detach()
    with pytest.raises(ValueError, match=r"arguments look swapped.*compare\(name, manual, tensor\)"):
        gradlab.compare("x", x, manual)
    with pytest.raises(ValueError, match=r"already a gradient \(such as x.grad\), pass the tensor itself"):
        gradlab.compare("x", manual, x.grad)
    with pytest.raises(AssertionError, match=r"(?s)manual value is itself a tensor that autograd differentiated"):
        gradlab.compare("x", x, x)


def test_numpy_scalar_rtol_is_a_number():
    np = pytest.importorskip("numpy")
    a, b = torch.tensor([1.0]), torch.tensor([1.001])
    assert gradlab.compare_tensors("np rtol", a, b, rtol=np.float32(1e-2)).ok
    assert gradlab.compare_tensors("np rtol", a, b, rtol=np.float64(1e-2)).ok
    with pytest.raises(ValueError, match="rtol must be positive"):
        gradlab.compare_tensors("np bool", a, b, rtol=np.bool_(True))


@pytest.mark.parametrize("make", [lambda: torch.ones(2, 2).to_sparse(), lambda: torch.ones(2, 2, device="meta")])
def test_sparse_and_meta_tensors_are_refused_clearly(make):
    with pytest.raises(TypeError, match=r"manual value is (a sparse_coo tensor.*to_dense|on the meta device.*CPU)"):
        gradlab.compare_tensors("s", make(), torch.ones(2, 2))


def test_two_half_precision_values_are_refused_without_rtol():
    a = torch.tensor([1.0, 2.0], dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"both half precision \(bfloat16\).*float32 or float64.*rtol="):
        gradlab.compare_tensors("bf16 pair", a, a.clone())
    with pytest.raises(ValueError, match=r"both half precision \(bfloat16 and float16\)"):
        gradlab.compare_tensors("mixed halves", a, a.half())
    x = torch.tensor([1.0, 2.0], dtype=torch.float16, requires_grad=True)
    (x * x).sum().backward()
    with pytest.raises(ValueError, match=r"compare\('x'\): the manual value and x.grad \(autograd\) are both half"):
        gradlab.compare("x", 2 * x.detach(), x)
    assert gradlab.compare_tensors("chosen", a, a.clone(), rtol=0.05).ok        # a tolerance chosen knowingly
    # Against a float32 reference a half-precision value is held to RTOL (one rounding).
    assert gradlab.compare_tensors("bf16 vs f32", a, a.float()).tolerance == 1e-2

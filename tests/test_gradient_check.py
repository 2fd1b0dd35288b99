"""gradlab.gradient_check: one stable row for gradcheck + gradgradcheck, and a clear failure."""
import re

import pytest
import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from gradlab.functions import Affine, LogSumExp, Mul, Sigmoid
from gradlab.gradient_check import GradcheckReport, check_function


def _rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class MulIgnoresUpstream(Function):
    """The classic slip: returns the local derivatives without multiplying by grad_output."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        return b, a


class SigmoidDetachedBackward(Sigmoid):
    """gradlab's Sigmoid, but backward detaches: right first derivative, wrong second."""

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * (y * (1 - y)).detach()


class SigmoidOnce(Sigmoid):
    """gradlab's Sigmoid with a backward that refuses to be differentiated again."""

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * y * (1 - y)


class WrongShapeGrad(Function):
    @staticmethod
    def forward(ctx, a):
        return a * 2

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output[:1]


def test_a_correct_function_passes_both_checks_and_prints_one_row(capsys):
    report = check_function(Mul, _rand(3, 4), _rand(4, seed=1))
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert re.fullmatch(r"Mul +\(3, 4\), \(4,\) +gradcheck ok +gradgradcheck ok\n", out)
    assert isinstance(report, GradcheckReport)
    assert report.ok and bool(report)
    assert (report.gradcheck, report.gradgradcheck, report.reason) == ("ok", "ok", "")
    assert report.shapes == ((3, 4), (4,))
    assert repr(report) == out.rstrip("\n")


def test_non_tensor_arguments_are_passed_through():
    report = check_function(LogSumExp, _rand(3, 5), 1)
    assert report.ok and report.shapes == ((3, 5),)
    report = check_function(lambda x, idx: x[idx].exp(), _rand(4), torch.tensor([0, 2, 2]), name="gather-exp")
    assert report.ok and report.name == "gather-exp" and report.shapes == ((4,),)


def test_float32_inputs_are_checked_in_float64_and_left_untouched():
    x32 = _rand(2, 3, dtype=torch.float32)
    W32, b32 = _rand(3, 2, seed=1, dtype=torch.float32), _rand(2, seed=2, dtype=torch.float32)
    kept = x32.clone()
    seen = []

    def affine(x, W, b):
        seen.append(x.dtype)
        return Affine.apply(x, W, b)

    assert check_function(affine, x32, W32, b32).ok
    assert set(seen) == {torch.float64}   # float32 finite differences would be noise
    assert x32.dtype == torch.float32 and not x32.requires_grad and torch.equal(x32, kept)


def test_a_wrong_function_raises_naming_it_and_the_failed_check(capsys):
    with pytest.raises(AssertionError, match=r"check_function\('MulIgnoresUpstream'\): gradcheck failed: "
                                             r"Jacobian mismatch for output 0 with respect to input 0\n"
                                             r"  inputs checked \(float64\): \(3,\), \(3,\)\n.*grad_output"):
        check_function(MulIgnoresUpstream, _rand(3), _rand(3, seed=1))
    assert "gradcheck FAILED" in capsys.readouterr().out   # the row is printed before raising


def test_a_wrong_function_can_return_a_failed_report_instead(capsys):
    report = check_function(MulIgnoresUpstream, _rand(3), _rand(3, seed=1), raise_on_failure=False)
    row = capsys.readouterr().out.strip()
    assert not report.ok and not bool(report)
    assert (report.gradcheck, report.gradgradcheck) == ("FAILED", "skipped")
    assert report.reason == "Jacobian mismatch for output 0 with respect to input 0"
    assert row.endswith("gradcheck FAILED  gradgradcheck skipped\n"
                        "  reason: Jacobian mismatch for output 0 with respect to input 0\n"
                        "  likely cause: the derivation")
    assert report.cause == "the derivation"
    assert "numerical" in report.detail and "analytical" in report.detail   # torch's full report is kept...
    assert "numerical" not in row and not re.search(r"\d\.\d{4}", row)      # ...but never printed


def test_a_non_differentiable_backward_fails_gradgradcheck():
    x = _rand(4)
    report = check_function(SigmoidDetachedBackward, x, raise_on_failure=False)
    assert (report.gradcheck, report.gradgradcheck) == ("ok", "FAILED")
    assert report.reason.startswith("Jacobian mismatch")
    with pytest.raises(AssertionError, match=r"check_function\('SigmoidOnce'\): gradgradcheck failed: RuntimeError: trying to differentiate twice a function that was marked with @once_differentiable"):
        check_function(SigmoidOnce, x)


def test_second_order_can_be_turned_off():
    report = check_function(SigmoidOnce, _rand(4), second_order=False)
    assert report.ok and report.gradgradcheck == "off"
    assert "gradgradcheck off" in report.row()
    assert check_function(Sigmoid, _rand(4)).gradgradcheck == "ok"


def test_an_error_inside_backward_is_reported_as_a_failure():
    report = check_function(WrongShapeGrad, _rand(3), raise_on_failure=False)
    assert report.gradcheck == "FAILED"
    assert report.reason.startswith("RuntimeError: Function WrongShapeGradBackward returned an invalid gradient")
    with pytest.raises(AssertionError, match=r"gradcheck failed: RuntimeError: .*\n.*\n  likely cause: an error in backward. The backward pass raised this error"):
        check_function(WrongShapeGrad, _rand(3))


def test_errors_in_the_forward_pass_propagate_unchanged():
    with pytest.raises(ValueError, match=r"Affine: shapes do not fit"):
        check_function(Affine, _rand(2, 3), _rand(2, 2), _rand(2))


def test_bad_arguments_are_rejected():
    with pytest.raises(TypeError, match=r"check_function: fn must be a torch.autograd.Function subclass or a function, got int"):
        check_function(3, _rand(2))
    with pytest.raises(ValueError, match=r"check_function\('Mul'\): no input is a floating-point tensor \(got int, Tensor\(torch.int64\)\)"):
        check_function(Mul, 2, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"check_function\('Sigmoid'\): no input is a floating-point tensor \(got nothing\)"):
        check_function(Sigmoid)
    with pytest.raises(TypeError, match=r"check_function: name must be a string label"):
        check_function(Sigmoid, _rand(2), name=7)
    with pytest.raises(TypeError, match=r"check_function\('Sigmoid'\): input 0 is complex"):
        check_function(Sigmoid, torch.ones(2, dtype=torch.complex128))


def test_bad_tolerances_are_rejected_before_checking(capsys):
    for kwargs in ({"eps": 0}, {"eps": -1e-6}, {"eps": float("nan")}, {"atol": -1.0}, {"rtol": float("inf")},
                   {"rtol": "1e-3"}, {"eps": True}):
        (arg, value), = kwargs.items()
        with pytest.raises(ValueError, match=rf"check_function\('Sigmoid'\): {arg} must be a (positive|non-negative) "
                                             rf"finite number.*defaults"):
            check_function(Sigmoid, _rand(3), **kwargs)
    assert capsys.readouterr().out == ""   # nothing was checked, so no row was printed
    assert check_function(Sigmoid, _rand(3), atol=0.0, rtol=1e-6).ok   # zero tolerances are allowed


def test_outputs_that_are_not_tensors_are_rejected():
    with pytest.raises(TypeError, match=r"check_function\('<lambda>'\): fn must return a tensor or a tuple of "
                                        r"tensors, but it returned float.*\.item\(\)"):
        check_function(lambda x: x.sum().item(), _rand(3))
    with pytest.raises(TypeError, match=r"but output 1 is NoneType"):
        check_function(lambda x: (x * 2, None), _rand(3))


def test_an_output_without_a_graph_is_rejected():
    # A constant, an integer result, or a detached computation: autograd recorded nothing to check.
    for fn in (lambda x: torch.ones(3, dtype=torch.float64), lambda x: x.argmax(), lambda x: x.detach() * 2):
        with pytest.raises(ValueError, match=r"no output of fn requires grad.*\.detach\(\), NumPy"):
            check_function(fn, _rand(3), name="f")
    # ...while a non-differentiable output beside a differentiable one is fine.
    assert check_function(lambda x: (x.exp(), x.argmax()), _rand(3), name="exp, argmax").ok


@pytest.mark.parametrize("layout", ["transposed", "empty"])
def test_non_contiguous_and_empty_inputs(layout):
    x = _rand(4, 3).T if layout == "transposed" else _rand(0, 3)
    report = check_function(Sigmoid, x)
    assert report.ok and report.shapes == (tuple(x.shape),)


# ---- scale: step and tolerances follow the inputs -----------------------------------------------

def _signed(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    magnitude = torch.rand(*shape, generator=g, dtype=torch.float64) + 0.5
    sign = torch.where(torch.rand(*shape, generator=g) < 0.5, -1.0, 1.0).double()
    return magnitude * sign * scale


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3, 1e5, 1e6])
def test_right_functions_pass_at_every_input_scale(scale, capsys):
    from gradlab.functions import Add, Exp, MatMul, Maximum, ReLU
    s = scale
    cases = [(Add, (_signed(4, 3, scale=s), _signed(3, seed=1, scale=s))),
             (Mul, (_signed(4, 3, scale=s), _signed(4, 1, seed=1, scale=s))),
             (ReLU, (_signed(6, scale=s),)),
             (MatMul, (_signed(2, 4, 3, scale=s), _signed(3, 5, seed=1, scale=s))),
             (Affine, (_signed(4, 3, scale=s), _signed(3, 2, seed=1, scale=s), _signed(2, seed=2, scale=s))),
             (Maximum, (_signed(4, 3, scale=s), _signed(3, seed=1, scale=s))),
             (LogSumExp, (_signed(2, 5, scale=s), 1)),
             (Sigmoid, (_signed(2, 3, scale=s),)),
             (Exp, (_signed(2, 3, scale=min(s, 100.0)),))]      # exp(1e3) overflows: not a scale test
    for fn, inputs in cases:
        assert check_function(fn, *inputs).ok, fn.__name__
    out = capsys.readouterr().out
    assert out.count("gradcheck ok      gradgradcheck ok") == len(cases)


def test_a_wrong_factor_is_caught_at_small_inputs():
    class MulOffByOnePercent(MulIgnoresUpstream):   # d/da (a*b) = b, but this returns 1.01 b
        @staticmethod
        def backward(ctx, grad_output):
            a, b = ctx.saved_tensors
            return grad_output * b * 1.01, grad_output * a

    report = check_function(MulOffByOnePercent, _signed(3, scale=1e-3), _signed(3, seed=1, scale=1e-3),
                            raise_on_failure=False)
    assert report.gradcheck == "FAILED" and report.cause == "the derivation"


class AffineWithoutBiasGrad(Affine):
    """gradlab's Affine, but the bias gets no gradient (zeros)."""

    @staticmethod
    def backward(ctx, grad_output):
        dx, dW, db = Affine.backward(ctx, grad_output)
        return dx, dW, None if db is None else torch.zeros_like(db)


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_a_wrong_gradient_of_a_small_influence_input_is_caught(scale, capsys):
    # With x and W of size 1e3 the outputs are about 1e6, so the bias moves them by 1e-6 of their
    # size: below gradcheck's atol in output units. Each input is also checked at its own scale.
    # (From about 1e4 on, rounding in outputs of 1e8 hides a bias step of 1e-6 altogether.)
    x, W = _signed(4, 3, scale=scale), _signed(3, 2, seed=1, scale=scale)
    b = _signed(2, seed=2)
    assert check_function(Affine, x, W, b).ok
    report = check_function(AffineWithoutBiasGrad, x, W, b, raise_on_failure=False)
    assert report.gradcheck == "FAILED" and report.cause == "the derivation"
    assert "input 2" in report.reason


# ---- the likely cause of a failure ------------------------------------------------------------

def test_a_kink_is_named_as_the_likely_cause(capsys):
    from gradlab.functions import ReLU
    report = check_function(ReLU, torch.tensor([1.0, 0.0, -2.0], dtype=torch.float64), raise_on_failure=False)
    assert report.gradcheck == "FAILED" and report.cause == "a kink"
    assert "element [1]" in report.detail
    lines = capsys.readouterr().out.rstrip().split("\n")
    assert lines[-1] == "  likely cause: a kink" and all(len(line) <= 100 for line in lines)
    with pytest.raises(AssertionError, match=r"likely cause: a kink\. An input sits on a kink"):
        check_function(ReLU, torch.tensor([1.0, 0.0, -2.0], dtype=torch.float64))


def test_a_nan_input_is_named_not_blamed_on_the_derivation():
    x = torch.tensor([1.0, float("nan"), 2.0], dtype=torch.float64)
    report = check_function(Sigmoid, x, raise_on_failure=False)
    assert report.gradcheck == "FAILED" and report.cause == "NaN"
    assert report.reason == "input 0 holds NaN or inf (1 of 3 elements)"
    with pytest.raises(AssertionError, match=r"(?s)likely cause: NaN\. A NaN or an infinity"):
        check_function(Sigmoid, x)


def test_an_overflowing_output_is_named_nan():
    from gradlab.functions import Exp
    report = check_function(Exp, torch.tensor([1.0, 800.0], dtype=torch.float64), raise_on_failure=False)
    assert report.cause == "NaN" and report.reason.startswith("output 0 is NaN or inf")


def test_a_nan_in_backward_is_named():
    class LogWithBadBackward(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.log()

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output / (x - x)      # 0/0

    report = check_function(LogWithBadBackward, torch.tensor([1.0, 2.0], dtype=torch.float64),
                            raise_on_failure=False)
    assert report.cause == "NaN" and "backward pass returns NaN" in report.detail


def test_rounding_is_named_scale():
    # A huge offset added and taken away inside f: rounding dwarfs the change across a step.
    report = check_function(lambda x: (x + 1e12) - 1e12, torch.tensor([0.5, 1.5], dtype=torch.float64),
                            name="offset", raise_on_failure=False, second_order=False)
    assert report.gradcheck == "FAILED" and report.cause == "scale"


# ---- clear errors ------------------------------------------------------------------------------

def test_a_missing_input_names_forward_parameters():
    with pytest.raises(TypeError, match=r"check_function\('Mul'\): Mul.forward takes 2 input\(s\) \(a, b\) but 1 "
                                        r"were given.*check_function\(Mul, a, b\)"):
        check_function(Mul, _rand(3))
    with pytest.raises(TypeError, match=r"MulIgnoresUpstream.forward takes 2 input\(s\) \(a, b\) but 3"):
        check_function(MulIgnoresUpstream, _rand(3), _rand(3), _rand(3))      # classic style: ctx skipped
    with pytest.raises(TypeError, match=r"check_function\('<lambda>'\): <lambda> takes 2 input\(s\) \(x, y\)"):
        check_function(lambda x, y: x * y, _rand(3))
    with pytest.raises(TypeError, match=r"check_function: pass the function to check first"):
        check_function()


def test_numpy_scalars_are_numbers_and_sparse_inputs_are_refused():
    np = pytest.importorskip("numpy")
    assert check_function(Sigmoid, _rand(3), eps=np.float64(1e-6), atol=np.float32(1e-5), rtol=np.float32(1e-3)).ok
    with pytest.raises(TypeError, match=r"check_function\('Sigmoid'\): input 0 is a sparse_coo tensor.*to_dense"):
        check_function(Sigmoid, _rand(2, 2).to_sparse())


def _softplus_cases(g):
    x = 4 * torch.randn(3, 4, generator=g, dtype=torch.float64)
    x[0, 0], x[-1, -1] = 800.0, -800.0
    return (x,)


def _softplus_ref(x):
    return torch.logaddexp(x, torch.zeros_like(x))


class _SoftplusBase(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * torch.sigmoid(x)


def test_check_function_cases_verdicts(capsys):
    class Naive(_SoftplusBase):
        @staticmethod
        def forward(x):
            return torch.log(1 + torch.exp(x))

    class Detached(_SoftplusBase):
        @staticmethod
        def backward(ctx, dy):
            (x,) = ctx.saved_tensors
            return dy * torch.sigmoid(x).detach()

    class Stub(torch.autograd.Function):
        """not written yet"""

    assert check_function(_SoftplusBase, cases=_softplus_cases, reference=_softplus_ref)
    assert not check_function(Naive, cases=_softplus_cases, reference=_softplus_ref)
    assert not check_function(Detached, cases=_softplus_cases, reference=_softplus_ref)
    assert not check_function(Stub, cases=_softplus_cases, reference=_softplus_ref)
    out = capsys.readouterr().out
    assert "correct on all 3 fresh cases" in out and "an overflow?" in out
    assert "the backward pass is not differentiable" in out and "no answer yet" in out
    assert "800" in out and "e+" not in out.split("up to")[1].split("\n")[0]
    with pytest.raises(TypeError, match="either inputs"):
        check_function(_SoftplusBase, torch.ones(2, dtype=torch.float64), cases=_softplus_cases,
                       reference=_softplus_ref)


def test_check_function_cases_forbidden_ops(capsys):
    import torch.nn.functional as F

    class TorchSoftplus(_SoftplusBase):
        @staticmethod
        def forward(x):
            return F.softplus(x)

    class TorchLogaddexp(_SoftplusBase):
        @staticmethod
        def forward(x):
            return torch.logaddexp(x, torch.zeros_like(x))

    forbid = ("softplus", "logaddexp")
    assert check_function(_SoftplusBase, cases=_softplus_cases, reference=_softplus_ref,
                          forbid_ops=forbid)
    capsys.readouterr()
    for cls, op in ((TorchSoftplus, "softplus"), (TorchLogaddexp, "logaddexp")):
        result = check_function(cls, cases=_softplus_cases, reference=_softplus_ref,
                                forbid_ops=forbid)
        out = capsys.readouterr().out
        assert not result and f"rule broken: it called torch's {op} (aten.{op})" in out
        assert "case 1 of 3" in out
    with pytest.raises(TypeError, match="cases= and reference="):
        check_function(_SoftplusBase, torch.ones(2, dtype=torch.float64), forbid_ops=forbid)


def test_check_function_cases_rules_watch_forward(capsys):
    from gradlab.rules import Rules

    class Float32Only(_SoftplusBase):
        @staticmethod
        def forward(x):
            return (x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))).double()

    cases = lambda g: tuple(t.float() for t in _softplus_cases(g))   # noqa: E731
    assert not check_function(Float32Only, cases=cases, reference=_softplus_ref,
                              rules=Rules(float64=False), second_order=False)
    assert "rule broken: it computed in float64" in capsys.readouterr().out


def test_check_function_cases_names_bug_1_and_bug_2(capsys):
    class IgnoresUpstream(_SoftplusBase):
        @staticmethod
        def backward(ctx, dy):
            (x,) = ctx.saved_tensors
            return torch.sigmoid(x)

    class WritesUpstream(_SoftplusBase):
        @staticmethod
        def backward(ctx, dy):
            (x,) = ctx.saved_tensors
            dy *= torch.sigmoid(x)
            return dy

    assert not check_function(IgnoresUpstream, cases=_softplus_cases, reference=_softplus_ref)
    assert "the local derivative alone (multiply it by the upstream gradient)" in \
        capsys.readouterr().out
    assert not check_function(WritesUpstream, cases=_softplus_cases, reference=_softplus_ref)
    out = capsys.readouterr().out
    assert "rule broken: backward wrote into the upstream gradient" in out

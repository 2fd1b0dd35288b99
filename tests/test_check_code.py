"""gradlab.exercises.check_code and gradlab.rules: fresh cases, every slip named, every rule enforced."""
import pytest
import torch

from gradlab.exercises import Rules, check_code
from gradlab.jacobian import jacobian_by_rows


def make_case(g):
    N, D, M = 5, 4, 3
    if int(torch.randint(0, 2, (), generator=g)):
        N, D, M = 7, 2, 6
    opts = dict(generator=g, dtype=torch.float64)
    return {"dout": torch.randn(N, M, **opts), "x": torch.randn(N, D, **opts), "W": torch.randn(D, M, **opts)}


def reference(dout, x, W):
    x.requires_grad_(), W.requires_grad_()
    b = torch.zeros(W.shape[1], dtype=W.dtype, requires_grad=True)
    (x @ W + b).backward(dout)
    return {"dx": x.grad, "dW": W.grad, "db": b.grad}


def right(dout, x, W):
    return dout @ W.T, x.T @ dout, dout.sum(0)


SLIPS = {
    "wrong sign": lambda dout, x, W: (-dout @ W.T, x.T @ dout, dout.sum(0)),
    "a factor of 2": lambda dout, x, W: (2 * dout @ W.T, x.T @ dout, dout.sum(0)),
    "the size of a dimension (a mean vs a sum": lambda dout, x, W: (dout @ W.T, x.T @ dout, dout.mean(0)),
    "an extra keepdim": lambda dout, x, W: (dout @ W.T, x.T @ dout, dout.sum(0, keepdim=True)),
    "transposed": lambda dout, x, W: (dout @ W.T, (x.T @ dout).T, dout.sum(0)),
    "no answer yet": lambda dout, x, W: (None, None, None),
    "NaN": lambda dout, x, W: (dout @ W.T * float("nan"), x.T @ dout, dout.sum(0)),
}


def test_a_right_answer_passes_every_case_and_prints_no_value(capsys):
    assert check_code(right, make_case, reference)
    out = capsys.readouterr().out
    assert "correct on all 3 fresh cases" in out and "e-" not in out and "." not in out.replace("...", "")


@pytest.mark.parametrize("hint", SLIPS)
def test_each_slip_fails_with_its_hint_and_no_value(hint, capsys):
    result = check_code(SLIPS[hint], make_case, reference)
    out = capsys.readouterr().out
    assert not result and hint in out and "not yet" in out
    assert not any(ch.isdigit() and "." in word for word in out.split() for ch in word)


def test_a_wrong_answer_on_one_case_only_fails():
    def square_only(dout, x, W):            # right only when the case's shapes happen to fit
        return (dout @ W.T, x.T @ dout, dout.sum(0)) if x.shape[0] == 5 else (None, None, None)
    assert not check_code(square_only, make_case, reference, seeds=(0, 1, 2, 3, 4, 5))


@pytest.mark.parametrize("cheat, rules, said", [
    (lambda dout, x, W: reference(dout, x, W), None, "it called Tensor.backward"),
    (lambda dout, x, W: right(dout.double(), x.double(), W.double()), Rules(float64=False),
     "computed in float64"),
    (lambda dout, x, W: (torch.eye(x.shape[0], dtype=x.dtype) @ dout @ W.T, x.T @ dout, dout.sum(0)),
     Rules(max_numel=lambda case: case["x"].numel()), "built a (5, 5) tensor (eye)"),
    (lambda dout, x, W: (jacobian_by_rows(lambda t: t, x[0]), right(dout, x, W))[1],
     Rules(forbid=(jacobian_by_rows,)), "jacobian_by_rows, which the exercise forbids"),
])
def test_each_rule_fails_a_right_answer_that_breaks_it(cheat, rules, said, capsys):
    assert not check_code(cheat, make_case, reference, rules=rules)
    out = capsys.readouterr().out
    assert "rule broken: " + said in out or said in out
    assert out.count("rule broken") == 1 and all(len(line) <= 100 for line in out.splitlines())


def test_autograd_is_allowed_when_the_rules_say_so():
    assert check_code(lambda dout, x, W: reference(dout, x, W), make_case, reference,
                      rules=Rules(autograd=True))


def test_an_error_in_the_learners_function_goes_through_with_the_case():
    def broken(dout, x, W):
        return dout @ W, None, None
    with pytest.raises(RuntimeError) as info:
        check_code(broken, make_case, reference)
    assert "case 1 of 3" in info.value.__notes__[0] and "keepdim" in info.value.__notes__[0]


def test_inputs_are_fresh_copies():
    def mutates(dout, x, W):
        x.zero_(), dout.zero_()
        return right(dout, x, W)
    assert not check_code(mutates, make_case, reference)


@pytest.mark.parametrize("call, error, match", [
    (lambda: check_code(None, make_case, reference), TypeError, "learner must be a function"),
    (lambda: check_code(right, make_case, reference, seeds=()), ValueError, "seeds"),
    (lambda: check_code(right, lambda g: 3, reference), TypeError, "make_case must return a dict"),
    (lambda: check_code(right, make_case, lambda **k: {}), TypeError, "non-empty dict"),
    (lambda: check_code(lambda **k: (1, 2), make_case, reference), ValueError, "asks for 3: dx, dW, db"),
    (lambda: Rules(max_numel=-1), ValueError, "max_numel"),
    (lambda: Rules(forbid=(len,)), TypeError, "Python functions"),
    (lambda: Rules(autograd="no"), TypeError, "True or False"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_nested_inputs_are_copied_and_a_long_header_wraps(capsys):
    def case(g):
        return {"P": {f"W{i}": torch.randn(9, 7, generator=g, dtype=torch.float64) for i in range(12)}}

    def ref(P):
        return {"s": sum(W.sum() for W in P.values()).reshape(1)}

    def mutates(P):
        total = sum(W.sum() for W in P.values()).reshape(1)
        for W in P.values():
            W.zero_()                     # the reference's copy must not change
        return total
    assert check_code(mutates, case, ref)
    out = capsys.readouterr().out
    assert all(len(line) <= 100 for line in out.splitlines()) and "P.W11 (9, 7)" in out


def test_a_sum_for_a_mean_names_the_dimension_even_at_sizes_3_to_5(capsys):
    def case(g):
        return {"x": torch.randn(4, 6, generator=g, dtype=torch.float64)}
    assert not check_code(lambda x: x.sum(0), case, lambda x: {"m": x.mean(0)})
    assert "4 is the size of a dimension" in capsys.readouterr().out


def test_a_transposed_square_matrix_is_named(capsys):
    def case(g):
        return {"A": torch.randn(4, 4, generator=g, dtype=torch.float64)}
    assert not check_code(lambda A: A.T, case, lambda A: {"dA": A})
    assert "transposed?" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, said", [
    (lambda x, dout: torch.cos(x), "not multiplied by the upstream gradient"),
    (lambda x, dout: torch.zeros_like(x), "all zeros"),
    (lambda x, dout: dout * torch.cos(x) / 4, "4 times too small"),
])
def test_elementwise_slips_are_named(wrong, said, capsys):
    def case(g):
        return {"x": torch.randn(5, 3, generator=g, dtype=torch.float64),
                "dout": torch.randn(5, 3, generator=g, dtype=torch.float64)}

    def ref(x, dout):
        x.requires_grad_()
        torch.sin(x).backward(dout)
        return {"dx": x.grad}
    assert not check_code(wrong, case, ref)
    assert said in capsys.readouterr().out


def test_a_missing_keepdim_is_named(capsys):
    def case(g):
        return {"x": torch.randn(5, 3, generator=g, dtype=torch.float64)}
    assert not check_code(lambda x: x.sum(1), case, lambda x: {"s": x.sum(1, keepdim=True)})
    assert "a missing keepdim=True" in capsys.readouterr().out


def test_the_header_names_flags_and_sizes_of_the_case(capsys):
    def case(g):
        return {"x": torch.randn(3, 2, generator=g, dtype=torch.float64), "causal": True, "block": 2}
    check_code(lambda x, causal, block: x, case, lambda x, causal, block: {"y": x})
    assert "case 3 of 3: causal=True, block=2, x (3, 2)" in capsys.readouterr().out


def test_a_mean_over_several_dimensions_and_a_sum_over_all_are_named(capsys):
    def case(g):
        return {"x": torch.randn(5, 3, 7, generator=g, dtype=torch.float64)}
    assert not check_code(lambda x: x.mean((0, 1)), case, lambda x: {"s": x.sum((0, 1))})
    assert "the size of several dimensions" in capsys.readouterr().out
    assert not check_code(lambda x: x.sum(), case, lambda x: {"s": x.sum((0, 1))})
    assert "summed over every dimension?" in capsys.readouterr().out


@pytest.mark.parametrize("how", [lambda x: torch.nn.functional.softplus(x),
                                 lambda x: torch.ops.aten.softplus(x), lambda x: x.clone().exp_()])
def test_forbidden_operators_are_seen_however_they_are_reached(how, capsys):
    def case(g):
        return {"x": torch.randn(4, 3, generator=g, dtype=torch.float64)}
    rules = Rules(forbid_ops=("softplus", "aten.exp"))
    assert not check_code(how, case, lambda x: {"y": how(x)}, rules=rules)
    out = capsys.readouterr().out
    assert "which the exercise forbids" in out and ("aten.softplus" in out or "aten.exp_" in out)
    assert check_code(lambda x: torch.log1p(x.exp()), case,
                      lambda x: {"y": torch.log1p(x.exp())}, rules=Rules(forbid_ops="softplus"))


def test_forbid_ops_takes_names():
    with pytest.raises(TypeError, match="ATen operator names"):
        Rules(forbid_ops=(torch.nn.functional.softplus,))

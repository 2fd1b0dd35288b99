"""gradlab.exercises: keys hide the answer, accept any answer within tolerance, and give hints."""
import re

import numpy as np
import pytest
import torch

from gradlab.exercises import answer_key, check, check_tensors


def test_key_does_not_contain_the_answer():
    for value in (2.5, 0.786448, -17.25, 1.5728, 12345.0):
        key = answer_key(value)
        assert key.startswith("gx1:f:scalar:1e-03:1e-08:")
        # no digit run of the answer (beyond a single digit) appears in the key's readable part
        readable = ":".join(key.split(":")[:5])
        assert str(value).replace("-", "").rstrip("0") not in readable
    assert re.fullmatch(r"gx1:i:scalar:[0-9a-f]{16}", answer_key(7))


def test_key_is_stable():
    # Chapters store keys: the hash of the grid must not change from run to run or machine to machine.
    assert answer_key(2.5) == answer_key(2.5)
    assert answer_key(7) == "gx1:i:scalar:" + answer_key(7).split(":")[-1]
    assert answer_key([1.0, 2.0]) == answer_key(torch.tensor([1.0, 2.0], dtype=torch.float64))


@pytest.mark.parametrize("right", [0.786448, 2.5, -3.125, 1e-4, 4.2e6, 1.0, 0.125])
def test_any_answer_within_tolerance_passes_and_outside_fails(right, capsys):
    key = answer_key(right)
    for rel in np.linspace(-1e-3, 1e-3, 41):
        assert check(right * (1 + rel), key), (right, rel)
    for rel in (-1.3e-3, 1.3e-3, 2e-3, -5e-3, 1e-2):
        assert not check(right * (1 + rel), key), (right, rel)
    out = capsys.readouterr().out
    assert f"{right}" not in out            # the answer is never printed


def test_hand_rounded_answers_pass():
    # the case of issue 13: 0.78646 for 0.786448 was rejected by the old exact-decimals check
    assert check(0.78646, answer_key(0.786448))
    assert check(1.5728, answer_key(2 * 0.78642))
    assert check(1.5729, answer_key(1.57284))


def test_integers_are_exact():
    key = answer_key(12)
    assert check(12, key) and check(12.0, key) and check(torch.tensor(12), key)
    assert not check(13, key) and not check(12.001, key)


def test_vectors_and_tensors():
    right = torch.tensor([[0.5, -1.25], [3.0, 0.0]], dtype=torch.float64)
    key = answer_key(right)
    assert check(right.tolist(), key)
    assert check(right.float() * (1 + 5e-4), key)
    assert check(np.array(right.tolist()), key)
    assert not check(right + torch.tensor([[0, 0], [0, 0.01]], dtype=torch.float64), key)


@pytest.mark.parametrize("wrong, hint", [
    (-2.5, "sign is wrong"),
    (5.0, "twice the right one"),
    (1.25, "half the right one"),
    (7.5, "3 times the right one"),
    (float("nan"), "NaN"),
    (2.9, "not right"),
])
def test_hints_name_the_mistake_not_the_answer(wrong, hint, capsys):
    key = answer_key(2.5)
    assert not check(wrong, key)
    out = capsys.readouterr().out
    assert hint in out and "2.5" not in out


def test_shape_hints():
    key = answer_key(torch.arange(6.0).reshape(2, 3))
    assert not check(torch.arange(6.0).reshape(2, 3).T, key)
    assert not check([1.0, 2.0], key)
    assert check(torch.arange(6.0).reshape(2, 3), key)


def test_no_answer_and_bad_input(capsys):
    key = answer_key(1.0)
    assert not check(None, key)
    assert "No answer yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="not text"):
        check("1.0", key)
    with pytest.raises(ValueError, match="answer_key"):
        check(1.0, "1a5fd97b7ad183d6")
    with pytest.raises(ValueError, match="damaged"):
        check(1.0, "gx1:f:scalar:oops")
    with pytest.raises(ValueError, match="rtol"):
        answer_key(1.0, rtol=0)
    with pytest.raises(ValueError, match="NaN"):
        answer_key(float("nan"))
    assert check(np.float32(1.0), key)


def _grads():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    W = torch.randn(3, 2, dtype=torch.float64, generator=g, requires_grad=True)
    (torch.tanh(x @ W) ** 2).sum().backward()
    return x, W


def test_check_tensors_accepts_right_code_in_another_order(capsys):
    x, W = _grads()
    t = torch.tanh(x.detach() @ W.detach())
    dz = 2 * t * (1 - t * t)
    result = check_tensors({"dx": dz @ W.detach().T, "dW": (x.detach().T @ dz)},
                           {"dx": x.grad, "dW": W.grad})
    assert result
    out = capsys.readouterr().out
    assert out.count("correct") == 2 and "dW" in out
    assert all(len(line) <= 100 for line in out.splitlines())


@pytest.mark.parametrize("transform, verdict", [
    (lambda g: -g, "wrong sign"),
    (lambda g: 2 * g, "twice too large"),
    (lambda g: g / 2, "half the right size"),
    (lambda g: 3 * g, "backward ran 3 times"),
    (lambda g: g.T, "transposed"),
    (lambda g: g + 1e-3 * g.abs().max(), "values are wrong"),
    (lambda g: g * float("nan"), "NaN"),
    (lambda g: None, "no answer yet"),
    (lambda g: g.sum(0), "expected (3, 2)"),
    (lambda g: g.sum(0), "expected (3, 2)"),
])
def test_check_tensors_hints(transform, verdict, capsys):
    _, W = _grads()
    assert not check_tensors({"dW": transform(W.grad.clone())}, {"dW": W.grad})
    out = capsys.readouterr().out
    assert verdict in out
    assert f"{W.grad[0, 0].item():.3f}" not in out


def test_check_tensors_bad_input():
    _, W = _grads()
    with pytest.raises(ValueError, match="same tensors"):
        check_tensors({"dx": W.grad}, {"dW": W.grad})
    with pytest.raises(TypeError, match="did backward"):
        check_tensors({"dW": W.grad}, {"dW": None})
    with pytest.raises(TypeError, match="two dicts"):
        check_tensors(W.grad, W.grad)
    with pytest.raises(ValueError, match="reference tensor contains NaN"):
        check_tensors({"dW": W.grad}, {"dW": W.grad * float("nan")})


@pytest.mark.parametrize("answer_shape, want_shape", [((4, 3), (4, 1)), ((4, 3), (3,)), ((2, 4, 3), (4, 3))])
def test_check_tensors_hints_a_missing_broadcast_sum(answer_shape, want_shape, capsys):
    assert not check_tensors({"db": torch.ones(answer_shape)}, {"db": torch.ones(want_shape)})
    assert "sum over the broadcast dimensions" in capsys.readouterr().out


def test_check_tensors_does_not_hint_broadcast_for_unrelated_shapes(capsys):
    assert not check_tensors({"db": torch.ones(4, 3)}, {"db": torch.ones(4, 2)})
    assert "broadcast" not in capsys.readouterr().out


def test_check_tensors_names_a_dtype_slip(capsys):
    _, W = _grads()
    assert not check_tensors({"dW": W.grad.float()}, {"dW": W.grad})
    out = capsys.readouterr().out
    assert "right to float32 precision; compute in float64" in out

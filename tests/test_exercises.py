"""gradlab.exercises: fingerprints are stable and do not reveal the answer; check reports it."""
import pytest
import torch

from gradlab.exercises import check, fingerprint


def test_fingerprint_is_stable_and_rounds():
    assert fingerprint(2.5) == fingerprint(2.50001) == fingerprint(torch.tensor(2.5))
    assert fingerprint(2.5) != fingerprint(2.51)
    assert fingerprint(0.0) == fingerprint(-0.00001)  # -0.0000 is 0.0000
    assert len(fingerprint(1.0)) == 16
    assert "2.5" not in fingerprint(2.5)


def test_fingerprint_of_tensors_and_nested_lists_agree():
    assert fingerprint(torch.tensor([[1.0, 2.0]])) == fingerprint([1.0, 2.0]) == fingerprint((1, (2.0,)))
    assert fingerprint([1.0, 2.0]) != fingerprint([2.0, 1.0])
    assert fingerprint(float("inf")) != fingerprint(1e300)


def test_check_reports_right_wrong_and_missing(capsys):
    fp = fingerprint(-8.0)
    assert check(-8.0, fp)
    assert "Correct" in capsys.readouterr().out
    assert not check(8.0, fp)
    assert "Not yet" in capsys.readouterr().out
    assert not check(None, fp)
    assert "No answer yet" in capsys.readouterr().out


def test_bad_input():
    with pytest.raises(TypeError, match="got str"):
        fingerprint("3")
    with pytest.raises(ValueError, match="16-character"):
        check(1.0, "abc")

"""gradlab.exercises: fingerprints are stable and do not reveal the answer; check reports it."""
import hashlib
import re

import pytest
import torch

from gradlab.exercises import check, fingerprint


def test_fingerprint_is_stable_and_rounds():
    assert fingerprint(2.5) == fingerprint(2.50001) == fingerprint(torch.tensor(2.5))
    assert fingerprint(2.5) != fingerprint(2.51)
    assert fingerprint(0.0) == fingerprint(-0.00001)  # -0.0000 is 0.0000
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint(1.0))


def test_fingerprint_values_are_pinned():
    # The chapters store fingerprints: any change to the rounding or the hash breaks every exercise.
    assert fingerprint(-8.0) == "db653312da92054b" == hashlib.sha256(b"-8.0000").hexdigest()[:16]
    assert fingerprint([1.0, 2.0]) == "4f6b34eddcb81b68"
    assert fingerprint(0.5, 2) == hashlib.sha256(b"0.50").hexdigest()[:16]
    assert fingerprint(0.5, 2) != fingerprint(0.5)   # decimals are part of the fingerprint


def test_fingerprint_of_tensors_and_nested_lists_agree():
    assert fingerprint(torch.tensor([[1.0, 2.0]])) == fingerprint([1.0, 2.0]) == fingerprint((1, (2.0,)))
    assert fingerprint([1.0, 2.0]) != fingerprint([2.0, 1.0])
    assert fingerprint(float("inf")) != fingerprint(1e300)
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    assert fingerprint(x * 1) == fingerprint([1.0, 2.0])          # a tensor with a graph is fine
    assert fingerprint(torch.tensor([[1.0, 3.0], [2.0, 4.0]]).T) == fingerprint([1.0, 2.0, 3.0, 4.0])


def test_check_reports_right_wrong_and_missing(capsys):
    fp = fingerprint(-8.0)
    assert check(-8.0, fp)
    assert capsys.readouterr().out == "Correct (checked to 4 decimals).\n"
    assert not check(8.0, fp)
    wrong = capsys.readouterr().out
    assert "Not yet" in wrong and "8" not in wrong   # neither the answer nor the guess is echoed
    assert not check(None, fp)
    assert "No answer yet" in capsys.readouterr().out
    assert check(0.25, fingerprint(0.251, decimals=2), decimals=2)
    assert capsys.readouterr().out == "Correct (checked to 2 decimals).\n"


def test_bad_input():
    with pytest.raises(TypeError, match="got str.*float"):
        fingerprint("3")
    with pytest.raises(TypeError, match="got ndarray.*tolist"):
        import numpy as np
        check(np.array([1.0]), fingerprint(1.0))
    with pytest.raises(TypeError, match=r"must be real, got a complex tensor \(torch.complex64\)"):
        fingerprint(torch.ones(2, dtype=torch.complex64))
    with pytest.raises(ValueError, match="16-character"):
        check(1.0, "abc")
    for decimals in (-1, 2.0, True, 13, "4"):
        with pytest.raises(ValueError, match=r"decimals must be an int from 0 to 12"):
            fingerprint(1.0, decimals)
        with pytest.raises(ValueError, match=r"decimals must be an int from 0 to 12"):
            check(1.0, fingerprint(1.0), decimals=decimals)

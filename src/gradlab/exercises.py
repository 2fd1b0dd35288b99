"""Self-checks for exercises: say whether an answer is right without printing the answer.

An exercise stores the fingerprint of its answer (a hash of the value rounded to a few decimals),
never the value itself. ``check`` rounds the reader's answer the same way and compares hashes.
"""
from __future__ import annotations

import hashlib
import math

import torch

from ._printed import PrintedResult

__all__ = ["fingerprint", "check", "CheckResult"]


def _flatten(value) -> list[float]:
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise TypeError(f"an answer must be real, got a complex tensor ({value.dtype}); pass its .real or .abs().")
        return [float(v) for v in value.detach().reshape(-1).tolist()]
    if isinstance(value, (list, tuple)):
        out: list[float] = []
        for v in value:
            out.extend(_flatten(v))
        return out
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"an answer must be a number, a tensor, or a list/tuple of them; got {type(value).__name__}. "
                        f"Convert NumPy values with .tolist(), and text with float(...).")
    return [float(value)]


def _check_decimals(decimals) -> int:
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 12:
        raise ValueError(f"decimals must be an int from 0 to 12 (how many decimals are compared), got {decimals!r}.")
    return decimals


def fingerprint(value, decimals: int = 4) -> str:
    """A 16-hex-digit hash of ``value`` (number, tensor, or nested list/tuple) rounded to ``decimals``.

    Only the values count, flattened in row-major order: ``[[1, 2]]``, ``[1, 2]`` and
    ``torch.tensor([1., 2.])`` share a fingerprint.
    """
    _check_decimals(decimals)
    parts = []
    for v in _flatten(value):
        if not math.isfinite(v):
            parts.append(repr(v))
            continue
        text = f"{round(v, decimals):.{decimals}f}"
        parts.append("0." + "0" * decimals if float(text) == 0 else text)  # -0.0000 == 0.0000
    return hashlib.sha256(",".join(parts).encode()).hexdigest()[:16]


class CheckResult(PrintedResult):
    """Truthy when the answer matched; ``check`` already printed ``message``."""

    def __init__(self, ok: bool, message: str):
        self.ok, self.message = ok, message

    def row(self) -> str:
        return self.message


def check(answer, expected_fingerprint: str, decimals: int = 4) -> CheckResult:
    """Print whether ``answer`` matches the stored fingerprint; the result is truthy if it does.

    ``None`` means "not answered yet" and prints how to proceed. ``decimals`` must be the value
    the fingerprint was made with (4 by default).
    """
    _check_decimals(decimals)
    if not (isinstance(expected_fingerprint, str) and len(expected_fingerprint) == 16):
        raise ValueError("expected_fingerprint must be the 16-character string that fingerprint() returns "
                         f"for the right answer, got {expected_fingerprint!r}.")
    if answer is None:
        result = CheckResult(False, "No answer yet: replace None with your answer and run this cell again.")
    elif fingerprint(answer, decimals) == expected_fingerprint:
        result = CheckResult(True, f"Correct (checked to {decimals} decimals).")
    else:
        result = CheckResult(False, f"Not yet: your answer does not match (checked to {decimals} decimals). "
                                    "Try again, or open the solution.")
    print(result.message)
    return result

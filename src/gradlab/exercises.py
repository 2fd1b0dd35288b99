"""Self-checks for exercises: say whether an answer is right without ever showing the answer.

Two kinds of exercise, two checks:

- A **numeric answer** (a number, a list, a tensor) is checked against a *key* made once by the
  author with :func:`answer_key`. The key holds the answer's shape, the tolerance and a salted
  hash of the answer placed on a grid, never the value; :func:`check` places the learner's
  answer on the same grid and compares hashes. Any answer within the tolerance passes.
- A **code exercise** (the learner writes a gradient or a backward pass) is checked by
  :func:`check_tensors`, which compares the learner's tensors with reference tensors the same
  cell computed with autograd, and prints one row per tensor: never the values.

Tolerances. A float key accepts an answer whose every element ``v`` is within about
``rtol * max(|right value|, atol)`` of the right one (it always accepts ``|error| <= rtol * ...``
and always rejects ``|error| > 1.25 * rtol * ...``; in between the grid decides). Integer keys are
exact. Wrong answers get a hint where one helps (sign, factor of 2, shape), never the answer.
"""
from __future__ import annotations

import hashlib
import math
from typing import Mapping

import torch

from ._printed import PrintedResult, format_shape
from ._validate import positive_number, require_dense
from .rules import Rules, watch

__all__ = ["answer_key", "check", "check_tensors", "check_code", "Rules", "CheckResult"]

_VERSION = "gx1"
_OFFSETS = 10          # grid offsets per element: acceptance band [rtol, 11/9 rtol]
_SALT = b"gradients-by-hand/exercises"


class CheckResult(PrintedResult):
    """Truthy when the answer is right; the check already printed ``message``."""

    def __init__(self, ok: bool, message: str):
        self.ok, self.message = ok, message

    def row(self) -> str:
        return self.message


# --- turning answers into flat lists ------------------------------------------------------------

def _as_tensor(value, what: str) -> torch.Tensor:
    """``value`` (number, nested list/tuple, NumPy array, tensor) as a detached float64 or int64 tensor."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
    else:
        if isinstance(value, (str, bytes)) or value is None:
            raise TypeError(f"{what} must be a number, a list of numbers or a tensor, "
                            f"got {type(value).__name__}; write a number such as 0.25, not text.")
        try:
            t = torch.as_tensor(value.tolist() if hasattr(value, "tolist") else value)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{what} must be a number, a list of numbers or a tensor, "
                            f"got {type(value).__name__} ({err}).") from None
    if t.is_complex():
        raise TypeError(f"{what} must be real, got a complex tensor ({t.dtype}); pass its .real.")
    require_dense(t, what)
    if t.dtype == torch.bool:
        raise TypeError(f"{what} is a boolean; give a number (True/False are not answers here).")
    t = t.cpu()
    return t.to(torch.int64) if not t.is_floating_point() else t.to(torch.float64)


def _grid_cells(values: torch.Tensor, rtol: float, atol: float, offsets: list[int]) -> list[int]:
    # asinh(v / atol) is linear near 0 and logarithmic for |v| >> atol, so one grid step is a
    # relative error for large values and an absolute one (atol * rtol) for values near zero.
    width = 2 * rtol * _OFFSETS / (_OFFSETS - 1)
    s = torch.asinh(values / atol)
    return [math.floor((float(si) - j * width / _OFFSETS) / width) for si, j in zip(s, offsets)]


def _best_offsets(values: torch.Tensor, rtol: float, atol: float) -> list[int]:
    # For each element, the grid offset that puts it nearest the middle of its cell.
    width = 2 * rtol * _OFFSETS / (_OFFSETS - 1)
    s = torch.asinh(values / atol)
    out = []
    for si in s.tolist():
        def margin(j):
            pos = (si - j * width / _OFFSETS) / width
            return abs(pos - math.floor(pos) - 0.5)
        out.append(min(range(_OFFSETS), key=margin))
    return out


def _digest(kind: str, shape: tuple, parts: list) -> str:
    text = f"{kind}|{shape}|" + ",".join(str(p) for p in parts)
    return hashlib.sha256(_SALT + text.encode()).hexdigest()[:16]


def _shape_text(shape: tuple) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def _parse_shape(text: str) -> tuple:
    return () if text == "scalar" else tuple(int(d) for d in text.split("x"))


def _check_positive(name: str, value) -> float:
    checked = positive_number(value)
    if checked is None:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return checked


def answer_key(value, *, rtol: float = 1e-3, atol: float = 1e-8) -> str:
    """The key of a right answer, for :func:`check`: shape, tolerance and a salted hash.

    ``value``: a number, a nested list or a tensor of any shape. Integers (Python ``int`` or an
    integer tensor) give an exact key. Floats give a key that accepts answers within ``rtol``
    relative to the right value (``atol`` is the scale below which the error counts absolutely).

    >>> key = answer_key(2.5)                      # doctest: +SKIP
    >>> check(2.5004, key)                         # doctest: +SKIP
    Correct (within relative 1e-03).
    """
    rtol, atol = _check_positive("rtol", rtol), _check_positive("atol", atol)
    t = _as_tensor(value, "the right answer")
    shape = tuple(t.shape)
    flat = t.reshape(-1)
    if not t.is_floating_point():
        return f"{_VERSION}:i:{_shape_text(shape)}:{_digest('i', shape, flat.tolist())}"
    if not torch.isfinite(flat).all():
        raise ValueError("the right answer contains NaN or inf; a key needs finite numbers.")
    offsets = _best_offsets(flat, rtol, atol)
    cells = _grid_cells(flat, rtol, atol, offsets)
    digits = "".join(str(j) for j in offsets)
    return (f"{_VERSION}:f:{_shape_text(shape)}:{rtol:.0e}:{atol:.0e}:{digits}:"
            f"{_digest('f', shape, cells)}")


def _parse_key(key):
    if not isinstance(key, str) or not key.startswith(_VERSION + ":"):
        raise ValueError(f"key must be the string that answer_key() returned (it starts with "
                         f"'{_VERSION}:'), got {key!r}.")
    parts = key.split(":")
    try:
        if parts[1] == "i" and len(parts) == 4:
            return {"kind": "i", "shape": _parse_shape(parts[2]), "hash": parts[3]}
        if parts[1] == "f" and len(parts) == 7:
            return {"kind": "f", "shape": _parse_shape(parts[2]), "rtol": float(parts[3]),
                    "atol": float(parts[4]), "offsets": [int(c) for c in parts[5]], "hash": parts[6]}
    except ValueError:
        pass
    raise ValueError(f"key {key!r} is damaged; copy it again from the exercise.")


def _matches(flat: torch.Tensor, spec: dict) -> bool:
    if spec["kind"] == "i":
        if flat.is_floating_point():
            if not (torch.isfinite(flat).all() and (flat == flat.round()).all()):
                return False
            flat = flat.to(torch.int64)
        return _digest("i", spec["shape"], flat.tolist()) == spec["hash"]
    if not torch.isfinite(flat).all() or len(spec["offsets"]) != flat.numel():
        return False
    cells = _grid_cells(flat.to(torch.float64), spec["rtol"], spec["atol"], spec["offsets"])
    return _digest("f", spec["shape"], cells) == spec["hash"]


def _numeric_hint(flat: torch.Tensor, spec: dict) -> str | None:
    if not torch.isfinite(flat.to(torch.float64)).all():
        return "your answer contains NaN or inf"
    f = flat.to(torch.float64)
    for factor, hint in ((-1.0, "the sign is wrong"),
                         (0.5, "your answer is twice the right one (a factor of 2 too many?)"),
                         (2.0, "your answer is half the right one (a factor of 2 missing?)"),
                         (-0.5, "wrong sign, and twice too large"),
                         (-2.0, "wrong sign, and half the right size")):
        if _matches(f * factor, spec):
            return hint
    for k in (3, 4, 5):
        if _matches(f / k, spec):
            return f"your answer is {k} times the right one"
    return None


def check(answer, key: str) -> CheckResult:
    """Print whether ``answer`` is right for ``key`` (from :func:`answer_key`); truthy if it is.

    ``answer`` may be a number, a list or a tensor; ``None`` means not answered yet. The printed
    line never contains the right answer.
    """
    spec = _parse_key(key)
    tol = f"within relative {spec['rtol']:.0e}" if spec["kind"] == "f" else "exactly"
    if answer is None:
        return _say(False, "No answer yet: replace None with your answer and run this cell again.")
    t = _as_tensor(answer, "your answer")
    want = spec["shape"]
    got = tuple(t.shape)
    size = math.prod(want)
    if got != want and not (t.numel() == size == 1):
        if len(got) == 2 and got[::-1] == want and _matches(t.T.reshape(-1), spec):
            return _say(False, f"Not yet: shape {format_shape(got)}, expected {format_shape(want)}: "
                               "your answer is the transpose of the right one.")
        return _say(False, f"Not yet: your answer has shape {format_shape(got)}, the exercise "
                           f"asks for shape {format_shape(want)}.")
    flat = t.reshape(-1)
    if _matches(flat, spec):
        return _say(True, f"Correct ({tol}).")
    hint = _numeric_hint(flat, spec)
    return _say(False, f"Not yet: {hint}." if hint else
                f"Not yet: your answer is not right ({tol}). Try again, or open the solution.")


def _say(ok: bool, message: str) -> CheckResult:
    result = CheckResult(ok, message)
    print(message)
    return result


# --- code exercises -------------------------------------------------------------------------------

#: Default normwise relative tolerance of :func:`check_tensors`, by the dtype of the reference.
CODE_RTOL = {torch.float64: 1e-8, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 2e-2}


def _rel_error(a: torch.Tensor, e: torch.Tensor) -> float:
    scale = max(e.abs().max().item() if e.numel() else 0.0, torch.finfo(torch.float64).tiny)
    return ((a - e).abs().max().item() if e.numel() else 0.0) / scale


def _tensor_verdict(mine, ref: torch.Tensor, rtol: float, sizes: tuple[int, ...] = (),
                    upstream: torch.Tensor | None = None) -> tuple[bool, str]:
    if mine is None:
        return False, "no answer yet (None)"
    if not isinstance(mine, torch.Tensor):
        return False, f"not yet: expected a tensor, got {type(mine).__name__}"
    if mine.is_complex() or not (mine.is_floating_point()):
        return False, f"not yet: expected a floating-point tensor, got {mine.dtype}"
    got, want = tuple(mine.shape), tuple(ref.shape)
    a = mine.detach().to(torch.float64).cpu()
    e = ref.detach().to(torch.float64).cpu()
    if got != want:
        if len(got) == 2 and got[::-1] == want and _rel_error(a.T, e) <= rtol:
            return False, f"not yet: shape {format_shape(got)}, expected {format_shape(want)} (transposed?)"
        # expected (4, 1) or (3,) from an answer (4, 3): the forward broadcast, so backward must sum
        tail = got[len(got) - len(want):] if len(want) <= len(got) else None
        broadcast = tail is not None and a.numel() > e.numel() and all(
            w in (1, g) for w, g in zip(want, tail))
        extra = " (sum over the broadcast dimensions?)" if broadcast else ""
        if not got and want:
            extra = " (summed over every dimension? sum only over the ones to remove)"
        if not extra and a.numel() == e.numel() and [d for d in got if d != 1] == [d for d in want if d != 1]:
            extra = (" (an extra keepdim=True, or an unsqueeze?)" if len(got) > len(want)
                     else " (a missing keepdim=True, or a squeeze?)")
        return False, f"not yet: shape {format_shape(got)}, expected {format_shape(want)}{extra}"
    if not torch.isfinite(a).all():
        return False, "not yet: your tensor contains NaN or inf"
    if not torch.isfinite(e).all():
        raise ValueError("the reference tensor contains NaN or inf, so it cannot judge an answer; "
                         "fix the cell that computes it.")
    if _rel_error(a, e) <= rtol:
        return True, "correct"
    if not a.any() and e.abs().max().item() > 0:
        return False, "not yet: all zeros (no gradient reached it?)"
    if (upstream is not None and upstream.shape == a.shape and upstream.abs().max().item() > 0
            and _rel_error(a * upstream.detach().to(torch.float64).cpu(), e) <= rtol):
        return False, "not yet: not multiplied by the upstream gradient (dout)?"
    if a.dim() == 2 and a.shape[0] == a.shape[1] > 1 and _rel_error(a.T, e) <= rtol:
        return False, "not yet: the transpose of the right matrix (transposed?)"
    if mine.dtype != ref.dtype and _rel_error(a, e) <= CODE_RTOL.get(mine.dtype, 1e-4):
        mine_t, ref_t = str(mine.dtype).replace("torch.", ""), str(ref.dtype).replace("torch.", "")
        return False, f"not yet: right to {mine_t} precision; compute in {ref_t}"
    if e.abs().max().item() > 0:
        for factor, hint in ((-1.0, "wrong sign"), (0.5, "twice too large (a factor of 2?)"),
                             (2.0, "half the right size (a factor of 2?)")):
            if _rel_error(a * factor, e) <= rtol:
                return False, f"not yet: {hint}"
        for k in (3, 4, 5):
            if _rel_error(a / k, e) <= rtol:
                if k in sizes:
                    return False, (f"not yet: {k} times too large ({k} is the size of a dimension: a sum "
                                   f"where a mean belongs? or backward ran {k} times?)")
                return False, f"not yet: {k} times too large (backward ran {k} times? zero the gradient)"
            if _rel_error(a * k, e) <= rtol and k not in sizes:
                return False, f"not yet: {k} times too small (a factor of {k} missing?)"
        if _rel_error(a / e.numel(), e) <= rtol or _rel_error(a * e.numel(), e) <= rtol:
            return False, "not yet: off by the number of elements (a mean vs a sum?)"
        for k in sorted({int(d) for d in sizes if d > 2}):
            if _rel_error(a / k, e) <= rtol or _rel_error(a * k, e) <= rtol:
                return False, (f"not yet: off by a factor of {k}, the size of a dimension "
                               "(a mean vs a sum over it?)")
        products = {int(x) * int(y) for i, x in enumerate(sizes) for y in sizes[i + 1:]} - {0, 1, 2}
        for k in sorted(products):
            if _rel_error(a / k, e) <= rtol or _rel_error(a * k, e) <= rtol:
                return False, (f"not yet: off by a factor of {k}, the size of several dimensions "
                               "(a mean vs a sum over them?)")
    return False, "not yet: the values are wrong"


def check_tensors(answers: Mapping[str, object], expected: Mapping[str, torch.Tensor], *,
                  rtol: float | None = None) -> CheckResult:
    """Check the learner's tensors against reference tensors; print one row per name.

    ``answers`` and ``expected`` map the same names to tensors (``answers`` values may be
    ``None``: not written yet). Each answer must have its reference's shape and agree within a
    normwise relative tolerance (max |mine - ref| <= rtol * max |ref|; default from
    :data:`CODE_RTOL` by the reference's dtype). Rows show name, shape and verdict, never values.
    """
    if not isinstance(answers, Mapping) or not isinstance(expected, Mapping):
        raise TypeError("check_tensors(answers, expected) takes two dicts mapping a name to a "
                        "tensor, e.g. check_tensors({'dx': dx}, {'dx': x.grad}).")
    if set(answers) != set(expected):
        raise ValueError(f"answers and expected must name the same tensors: answers has "
                         f"{sorted(answers)}, expected has {sorted(expected)}.")
    if rtol is not None:
        rtol = _check_positive("rtol", rtol)
    ok_all, rows = True, []
    width = max(len(n) for n in expected) if expected else 0
    for name, ref in expected.items():
        if not isinstance(ref, torch.Tensor):
            raise TypeError(f"expected[{name!r}] must be a tensor (e.g. x.grad after backward()), "
                            f"got {type(ref).__name__}; did backward() run?")
        tol = rtol if rtol is not None else CODE_RTOL.get(ref.dtype, 1e-4)
        ok, verdict = _tensor_verdict(answers[name], ref, tol)
        ok_all &= ok
        rows.append(f"{name:<{width}}  {format_shape(ref.shape):<12} {verdict}")
    message = "\n".join(rows)
    return _say(bool(ok_all), message)


# --- code exercises judged on fresh cases -----------------------------------------------------------

def _copy(value):
    """A detached copy of a tensor, and of every tensor inside a dict, list or tuple."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value


def _fresh(case: Mapping) -> dict:
    """Detached copies of a case's tensors (other values as they are), so no call changes another's."""
    return {k: _copy(v) for k, v in case.items()}


def _tensors(value, name: str):
    if isinstance(value, torch.Tensor):
        yield name, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _tensors(v, f"{name}[{k!r}]" if not isinstance(k, str) else f"{name}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{name}[{i}]")


def _case_shapes(case: Mapping, head: str = "", width: int = 100) -> str:
    """``head`` then each input tensor's name and shape, wrapped at ``width`` columns."""
    parts = [f"{k}={v}" if isinstance(v, (bool, int, str)) else "" for k, v in case.items()]
    parts = [p for p in parts if p] + [f"{n} {format_shape(t.shape)}" for k, v in case.items()
                                       for n, t in _tensors(v, k)]
    lines, line = [], head
    for i, part in enumerate(parts):
        piece = part + ("," if i < len(parts) - 1 else "")
        if len(line) + len(piece) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = "  "
        line += piece + " "
    lines.append(line.rstrip())
    return "\n".join(lines)


def _as_answers(got, names: list[str], who: str) -> dict:
    if isinstance(got, Mapping):
        missing = [n for n in names if n not in got]
        if missing:
            raise ValueError(f"{who} returned a dict without {missing}; return every name of "
                             f"{names} (None for one not written yet).")
        return {n: got[n] for n in names}
    if got is None or isinstance(got, torch.Tensor):
        got = (got,)
    if isinstance(got, (tuple, list)) and len(got) == len(names):
        return dict(zip(names, got))
    count = len(got) if isinstance(got, (tuple, list)) else 1
    raise ValueError(f"{who} returned {count} value(s); the exercise asks for {len(names)}: "
                     f"{', '.join(names)} (a tuple in this order, or a dict).")


def check_code(learner, make_case, reference, *, seeds=(0, 1, 2), rules: Rules | None = None,
               rtol: float | None = None, names: list[str] | None = None) -> CheckResult:
    """Judge the learner's function on fresh cases against autograd; print rows, never values.

    For each seed, ``case = make_case(torch.Generator().manual_seed(seed))`` is a dict of named
    inputs (draw shapes from the generator too, non-square, so a transpose shows);
    ``reference(**case)`` returns a dict name -> expected tensor (autograd's, every intermediate
    the exercise asks for); ``learner(**case)`` returns a dict with those names, a tuple in their
    order, or one tensor. Each gets its own detached copies. ``rules`` (:class:`Rules`; default
    ``Rules()``: no autograd) is watched while the learner's function runs. Stops at the first case that fails and prints its input
    shapes, one row per name and the broken rules. An error inside the learner's function is
    raised as it is, with a note naming the case, so its traceback shows the learner's line.
    """
    for what, fn in (("learner", learner), ("make_case", make_case), ("reference", reference)):
        if not callable(fn):
            raise TypeError(f"check_code: {what} must be a function, got {type(fn).__name__}"
                            + ("; define it in the cell above and run that cell first." if what == "learner" else "."))
    seeds = tuple(seeds)
    if not seeds or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"check_code: seeds must be a non-empty sequence of ints, got {seeds!r}.")
    if rtol is not None:
        rtol = _check_positive("rtol", rtol)
    who = getattr(learner, "__name__", "your function")
    n = len(seeds)
    for i, seed in enumerate(seeds, 1):
        case = make_case(torch.Generator().manual_seed(seed))
        if not isinstance(case, Mapping):
            raise TypeError(f"check_code: make_case must return a dict of named inputs, got {type(case).__name__}.")
        expected = reference(**_fresh(case))
        if not isinstance(expected, Mapping) or not expected:
            raise TypeError("check_code: reference must return a non-empty dict name -> expected tensor.")
        wanted = list(names) if names is not None else list(expected)
        shapes = _case_shapes(case, width=10_000)
        inputs = _fresh(case)
        with watch(Rules() if rules is None else rules, case) as broken:
            try:
                got = learner(**inputs)
            except Exception as err:
                size_slip = isinstance(err, RuntimeError) and any(
                    p in str(err) for p in ("must match the size", "cannot be multiplied", "shape", "size of tensor",
                                             "expanded size"))
                no_graph = "does not require grad and does not have a grad_fn" in str(err)
                err.add_note(f"(raised in {who} on case {i} of {n} of the check, inputs {shapes}"
                             + ("; a size mismatch often means a missing keepdim=True, a transpose or a "
                                "sum over the wrong dimension)" if size_slip else
                                "; a missing create_graph=True in an earlier torch.autograd.grad?)"
                                if no_graph else ")"))
                raise
        answers = _as_answers(got, wanted, who)
        sizes = tuple(d for k, v in case.items() for _, t in _tensors(v, k) for d in t.shape)
        width = max(len(k) for k in wanted)
        upstream = case.get("dout") if isinstance(case.get("dout"), torch.Tensor) else None
        rows, ok_all = [], not broken
        for name in wanted:
            ref = expected[name]
            if not isinstance(ref, torch.Tensor):
                raise TypeError(f"check_code: reference's {name!r} must be a tensor, got {type(ref).__name__}.")
            tol = rtol if rtol is not None else CODE_RTOL.get(ref.dtype, 1e-4)
            ok, verdict = _tensor_verdict(answers[name], ref, tol, sizes, upstream)
            ok_all &= ok
            rows.append(f"{name:<{width}}  {format_shape(ref.shape):<12} {verdict}")
        rows += [f"rule broken: {b}" for b in broken]
        if not ok_all or i == n:
            head = _case_shapes(case, f"{who}, case {i} of {n}: ")
            tail = (f"correct on all {n} fresh cases" if ok_all else
                    f"not yet: fix it and run the check again, or open the solution")
            return _say(bool(ok_all), "\n".join([head, *rows, tail]))
    raise AssertionError("unreachable")  # pragma: no cover

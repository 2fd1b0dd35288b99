"""What an exercise forbids, and a watch that sees whether a learner's function broke it.

An exercise such as "write the backward pass yourself", "never build the m x m matrix" or "stay in
float32" is only as strong as its check. :class:`Rules` states those limits and :func:`watch`
observes one call of the learner's function:

- Python calls (``sys.setprofile``): a call of ``Tensor.backward``, ``torch.autograd.grad``,
  ``torch.autograd.functional.*`` or ``torch.func.*``, or of any function named in ``forbid``,
  is seen however the learner imported it;
- PyTorch operations (a ``TorchDispatchMode``): every tensor an operation creates, so a float64
  tensor or one of more than ``max_numel`` elements is seen, views included; and every ATen
  operator that runs, so one named in ``forbid_ops`` (``"softplus"``, a kernel's own backward) is
  seen however it was reached (``F.softplus``, ``torch.ops.aten.softplus``, a method).

Nothing is prevented: the call runs as written and the watch reports what it saw, as rows.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ._printed import format_shape
from ._validate import is_integer

__all__ = ["Rules", "watch"]


def _code_objects(fn) -> set:
    """The code objects a call of ``fn`` runs first: its own and those of the functions it wraps."""
    codes, seen = set(), set()
    while fn is not None and id(fn) not in seen:
        seen.add(id(fn))
        target = getattr(fn, "__func__", fn)           # bound and class methods
        code = getattr(target, "__code__", None)
        if code is not None:
            codes.add(code)
        fn = getattr(target, "__wrapped__", None)
    return codes


def _autograd_entry_points() -> dict:
    """code object -> the public name a learner would have called."""
    import torch.autograd.functional as functional
    import torch.func as func

    named = {"Tensor.backward": torch.Tensor.backward, "torch.autograd.backward": torch.autograd.backward,
             "torch.autograd.grad": torch.autograd.grad}
    for name in ("jacobian", "hessian", "vjp", "jvp", "hvp", "vhp"):
        named[f"torch.autograd.functional.{name}"] = getattr(functional, name)
    for name in ("grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "linearize"):
        if hasattr(func, name):
            named[f"torch.func.{name}"] = getattr(func, name)
    return {code: name for name, fn in named.items() for code in _code_objects(fn)}


class Rules:
    """Limits on what the learner's function may run.

    ``autograd``: may it call autograd (``.backward()``, ``torch.autograd.grad``,
    ``torch.autograd.functional``, ``torch.func``)? Default False: the exercise is to write the
    backward pass. ``float64``: may it create float64 tensors? (Set False for a float32 exercise.)
    ``max_numel``: the most elements any tensor it creates may have; an int, or a function of the
    case's dict returning one. ``forbid``: Python functions it must not call. ``forbid_ops``: names
    of ATen operators it must not run (``"logsumexp"``; an in-place variant counts too).
    """

    def __init__(self, *, autograd: bool = False, float64: bool = True,
                 max_numel: int | Callable[[dict], int] | None = None,
                 forbid: Iterable[Callable] = (), forbid_ops: Iterable[str] = ()):
        if not isinstance(autograd, bool) or not isinstance(float64, bool):
            raise TypeError(f"Rules: autograd and float64 are True or False, got autograd={autograd!r}, "
                            f"float64={float64!r}.")
        if max_numel is not None and not callable(max_numel) and not (is_integer(max_numel) and max_numel >= 0):
            raise ValueError(f"Rules: max_numel must be a non-negative int or a function of the case, "
                             f"got {max_numel!r}.")
        forbid = tuple(forbid)
        bad = [f for f in forbid if not _code_objects(f)]
        if bad:
            raise TypeError(f"Rules: forbid takes Python functions (e.g. gradlab.jacobian.jacobian_by_rows), "
                            f"got {bad!r}, which has no Python code to watch.")
        forbid_ops = (forbid_ops,) if isinstance(forbid_ops, str) else tuple(forbid_ops)
        if not all(isinstance(op, str) and op for op in forbid_ops):
            raise TypeError(f"Rules: forbid_ops takes ATen operator names such as 'softplus', got "
                            f"{forbid_ops!r}.")
        self.autograd, self.float64, self.max_numel, self.forbid = autograd, float64, max_numel, forbid
        self.forbid_ops = tuple(op.removeprefix("aten.") for op in forbid_ops)

    def __repr__(self) -> str:
        return (f"Rules(autograd={self.autograd}, float64={self.float64}, "
                f"max_numel={self.max_numel!r}, forbid={[getattr(f, '__name__', f) for f in self.forbid]}, "
                f"forbid_ops={list(self.forbid_ops)})")


class _TensorWatch(TorchDispatchMode):
    def __init__(self, float64: bool, max_numel: int | None, seen: list[str], ops: tuple = ()):
        super().__init__()
        self.float64, self.max_numel, self.seen, self.kinds = float64, max_numel, seen, set()
        self.ops = set(ops)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if self.ops and (name in self.ops or name.rstrip("_") in self.ops):
            self._say(f"op {name}", f"it called torch's {name.rstrip('_')} (aten.{name}), which the "
                                    f"exercise forbids")
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            op = str(func.overloadpacket).replace("aten.", "")
            if not self.float64 and t.dtype == torch.float64:
                self._say("float64", f"it computed in float64 ({op}); keep the inputs' dtype")
            if self.max_numel is not None and t.numel() > self.max_numel:
                self._say("numel", f"it built a {format_shape(t.shape)} tensor ({op}), over the "
                                   f"{self.max_numel} elements allowed")
        return out

    def _say(self, kind: str, text: str) -> None:
        # One row per rule: the first operation that broke it.
        if kind not in self.kinds:
            self.kinds.add(kind)
            self.seen.append(text)


@contextmanager
def watch(rules: Rules | None, case: dict | None = None):
    """Watch the code run inside the ``with`` block; yields a list that fills with broken rules."""
    seen: list[str] = []
    if rules is None:
        yield seen
        return
    if not isinstance(rules, Rules):
        raise TypeError(f"rules must be a gradlab.rules.Rules, got {type(rules).__name__}.")
    limit = rules.max_numel(case or {}) if callable(rules.max_numel) else rules.max_numel
    calls = {} if rules.autograd else {c: f"it called {n}: write the gradient yourself"
                                       for c, n in _autograd_entry_points().items()}
    for fn in rules.forbid:
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
        module = getattr(fn, "__module__", "")
        for code in _code_objects(fn):
            calls[code] = f"it called {module + '.' if module else ''}{name}, which the exercise forbids"

    inside = []   # the watched call running now: what it calls in turn is not the learner's

    def profile(frame, event, arg):
        if event == "call" and not inside:
            said = calls.get(frame.f_code)
            if said is not None:
                inside.append(frame)
                if said not in seen:
                    seen.append(said)
        elif event == "return" and inside and frame is inside[0]:
            inside.clear()

    previous = sys.getprofile()
    sys.setprofile(profile if calls else previous)
    try:
        if rules.float64 and limit is None and not rules.forbid_ops:
            yield seen
        else:
            with _TensorWatch(rules.float64, limit, seen, rules.forbid_ops):
                yield seen
    finally:
        sys.setprofile(previous)

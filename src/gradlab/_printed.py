"""The shared behaviour of results that gradlab prints when they are made.

``compare``, ``check_function`` and ``exercises.check`` print one row and return an object that
holds the same outcome as data. Such an object is truthy when the check passed, its repr is the
row, and a notebook does not echo it (the row is already on the page once).
"""
from __future__ import annotations


def format_shape(dims) -> str:
    """``(2, 3)`` for ``(2, 3)`` or ``torch.Size([2, 3])``; ``(4,)`` for one dimension; ``()`` for none."""
    dims = tuple(dims)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


class PrintedResult:
    """Mixin: subclasses provide ``ok`` (bool) and ``row()`` (the printed line)."""

    ok: bool

    def row(self) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def __bool__(self) -> bool:
        return bool(self.ok)

    def __repr__(self) -> str:
        return self.row()

    def _ipython_display_(self) -> None:
        # The row was printed when the check ran; echoing the returned object would repeat it.
        pass

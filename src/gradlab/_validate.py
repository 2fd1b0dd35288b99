"""Argument checks shared by gradlab's public functions.

Every error names the argument, says what was received, and says what to do.
"""
from __future__ import annotations

import math
import numbers

import torch

from ._printed import format_shape


def shape_str(t: torch.Tensor) -> str:
    """``(2, 3)`` for a tensor of shape ``torch.Size([2, 3])``; ``()`` for a scalar."""
    return format_shape(t.shape)


def is_real_number(value) -> bool:
    """A real number: Python ``int``/``float`` or a NumPy scalar such as ``np.float32`` (not a bool)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return False
    return isinstance(value, numbers.Real) and not isinstance(value, torch.Tensor)


def is_integer(value) -> bool:
    """An integer: Python ``int`` or a NumPy integer such as ``np.int64`` (not a bool)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return False
    return isinstance(value, numbers.Integral) and not isinstance(value, torch.Tensor)


def positive_number(value) -> float | None:
    """``float(value)`` if ``value`` is a positive finite real number (NumPy scalars too), else None."""
    if not is_real_number(value):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def require_dense(t: torch.Tensor, what: str) -> torch.Tensor:
    """A dense tensor with values: sparse layouts and the meta device are refused with what to do."""
    if t.layout != torch.strided:
        layout = str(t.layout).replace("torch.", "")
        raise TypeError(
            f"{what} is a {layout} tensor; gradlab works with dense tensors only. "
            f"Convert it with .to_dense() first."
        )
    if t.device.type == "meta":
        raise TypeError(
            f"{what} is on the meta device, which records shapes but holds no values, so there is "
            f"nothing to compute with. Create it on the CPU (device='cpu') or with torch.randn/zeros."
        )
    return t


def require_tensor(value, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{what} must be a torch.Tensor, got {type(value).__name__}. "
            f"Wrap plain numbers or lists with torch.tensor(...)."
        )
    return require_dense(value, what)


def require_floating(t: torch.Tensor, what: str) -> torch.Tensor:
    if not (t.is_floating_point() or t.is_complex()):
        raise TypeError(
            f"{what} has dtype {t.dtype}, but gradients only exist for floating-point tensors. "
            f"Create it with a float dtype, e.g. torch.tensor(..., dtype=torch.float64) or .double()."
        )
    if t.is_complex():
        raise TypeError(f"{what} is complex ({t.dtype}); gradlab handles real floating-point tensors only.")
    return t


def require_same_shape(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str, hint: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a_name} has shape {shape_str(a)} but {b_name} has shape {shape_str(b)}. {hint}")


def require_float_tensor(value, what: str) -> torch.Tensor:
    """A real floating-point tensor, or a ``TypeError`` that names ``what``."""
    return require_floating(require_tensor(value, what), what)


def require_same_dtype(fn: str, *named: tuple[str, torch.Tensor]) -> None:
    """All ``(name, tensor)`` pairs share one dtype, or a ``TypeError`` that lists them."""
    if len({t.dtype for _, t in named}) > 1:
        listing = ", ".join(f"{name} is {t.dtype}" for name, t in named)
        raise TypeError(f"{fn}: the tensors must share one dtype, but {listing}. Convert them, e.g. with .double().")

"""Small synthetic data sets for the chapters, made from a seeded generator (never global RNG)."""
from __future__ import annotations

import math

import torch

from ._validate import is_integer, is_real_number

__all__ = ["make_spirals"]


def make_spirals(n_per_class: int, n_classes: int = 3, noise: float = 0.2, *,
                 generator: torch.Generator):
    """Points on interleaved spiral arms in the plane, and their labels (the CS231n toy problem).

    Point ``t`` in [0, 1] of arm ``k`` sits at radius ``t`` and angle
    ``4 t + 2 pi k / n_classes + noise * N(0, 1)``. Returns ``X`` (n_per_class * n_classes, 2)
    float64 and ``y`` (n_per_class * n_classes,) int64, arm by arm.
    """
    for name, value, low in (("n_per_class", n_per_class, 2), ("n_classes", n_classes, 1)):
        if not is_integer(value) or value < low:
            raise ValueError(f"make_spirals: {name} must be an integer >= {low}, got {value!r}.")
    if not is_real_number(noise) or not 0 <= noise < math.inf:
        raise ValueError(f"make_spirals: noise must be a finite number >= 0, got {noise!r}.")
    if not isinstance(generator, torch.Generator):
        raise TypeError("make_spirals: pass generator=torch.Generator().manual_seed(k), so that the "
                        f"points are the same on every run; got {type(generator).__name__}.")
    n_per_class, n_classes = int(n_per_class), int(n_classes)
    t = torch.linspace(0.0, 1.0, n_per_class, dtype=torch.float64)
    points, labels = [], []
    for k in range(n_classes):
        jitter = torch.randn(n_per_class, generator=generator, dtype=torch.float64)
        angle = 4.0 * t + 2 * math.pi * k / n_classes + float(noise) * jitter
        points.append(torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=1))
        labels.append(torch.full((n_per_class,), k))
    return torch.cat(points), torch.cat(labels)

"""gradlab.data: the spiral data set is seeded, shaped and labelled as documented."""
import math

import pytest
import torch

from gradlab.data import make_spirals


def test_spirals_shapes_labels_and_geometry():
    X, y = make_spirals(50, 3, generator=torch.Generator().manual_seed(0))
    assert X.shape == (150, 2) and X.dtype == torch.float64
    assert y.dtype == torch.int64 and y.tolist() == [0] * 50 + [1] * 50 + [2] * 50
    radius = X.norm(dim=1)
    t = torch.linspace(0, 1, 50, dtype=torch.float64)
    assert torch.allclose(radius, t.repeat(3), atol=1e-12)     # radius t, whatever the noise


def test_spirals_without_noise_follow_the_formula():
    X, _ = make_spirals(5, 2, noise=0.0, generator=torch.Generator().manual_seed(0))
    t = 0.5
    angle = 4 * t + 2 * math.pi * 1 / 2
    assert torch.allclose(X[7], torch.tensor([t * math.cos(angle), t * math.sin(angle)],
                                             dtype=torch.float64))


def test_spirals_are_reproducible_from_the_seed():
    a = make_spirals(20, generator=torch.Generator().manual_seed(3))[0]
    b = make_spirals(20, generator=torch.Generator().manual_seed(3))[0]
    c = make_spirals(20, generator=torch.Generator().manual_seed(4))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_per_class": 1}, ValueError, "n_per_class"),
    ({"n_per_class": 10.0}, ValueError, "n_per_class"),
    ({"n_classes": 0}, ValueError, "n_classes"),
    ({"noise": -1}, ValueError, "noise"),
    ({"generator": None}, TypeError, "manual_seed"),
])
def test_bad_input(kwargs, error, match):
    args = {"n_per_class": 10, "generator": torch.Generator().manual_seed(0), **kwargs}
    with pytest.raises(error, match=match):
        make_spirals(**args)

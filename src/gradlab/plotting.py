"""One look for every figure of the book: white cards that read in light and dark themes alike."""
from __future__ import annotations

import matplotlib as mpl

__all__ = ["PALETTE", "use_book_style"]

#: Colours distinguishable with common colour-vision deficiencies (Okabe-Ito).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]


def use_book_style() -> None:
    """Set matplotlib defaults for the book: fixed size and dpi, opaque white background, grid."""
    mpl.rcParams.update({
        "figure.figsize": (6.4, 3.8),
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "figure.facecolor": "white",
        "axes.facecolor": "white",
        "savefig.facecolor": "white",
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.prop_cycle": mpl.cycler(color=PALETTE),
        "font.size": 10,
        "svg.hashsalt": "gradients-by-hand",
    })

"""One look for every figure of the book: white cards that read in light and dark themes alike."""
from __future__ import annotations

import matplotlib as mpl

__all__ = ["PALETTE", "use_book_style"]

#: Colours distinguishable with common colour-vision deficiencies (Okabe-Ito).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]


def _inline_retina() -> bool:
    """In a Jupyter kernel with the inline backend, store figures as 2x PNGs; True if it did."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is always installed with the course
        return False
    shell = get_ipython()
    if shell is None or "inline" not in mpl.get_backend().lower():
        return False
    from matplotlib_inline.backend_inline import set_matplotlib_formats
    set_matplotlib_formats("retina")   # PNG at 2x dpi, displayed at 1x size: sharp on every screen
    return True


def use_book_style() -> None:
    """Set matplotlib defaults for the book: fixed size and dpi, opaque white background, grid.

    In a notebook it also stores inline figures at twice their displayed resolution (retina PNG).
    """
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
    _inline_retina()

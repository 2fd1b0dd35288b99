"""gradlab.plotting: the book's figure style."""
import matplotlib
import matplotlib.colors as mcolors
import pytest

from gradlab.plotting import PALETTE, use_book_style


@pytest.fixture
def restore_rc():
    saved = matplotlib.rcParams.copy()
    yield
    matplotlib.rcParams.update(saved)


def test_use_book_style_sets_a_fixed_opaque_look(restore_rc):
    matplotlib.rcParams["figure.dpi"] = 72
    use_book_style()
    rc = matplotlib.rcParams
    assert tuple(rc["figure.figsize"]) == (6.4, 3.8)
    assert rc["figure.dpi"] == rc["savefig.dpi"] == 100
    assert rc["figure.facecolor"] == rc["axes.facecolor"] == rc["savefig.facecolor"] == "white"
    assert rc["svg.hashsalt"] == "gradients-by-hand"   # SVG ids do not change from run to run
    assert [c.lower() for c in rc["axes.prop_cycle"].by_key()["color"]] == [c.lower() for c in PALETTE]


def test_palette_is_distinct_valid_colours():
    assert len(set(PALETTE)) == len(PALETTE) == 7
    assert all(mcolors.is_color_like(c) for c in PALETTE)

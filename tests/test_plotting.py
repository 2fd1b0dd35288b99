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


def test_figures_in_a_notebook_are_stored_at_2x(tmp_path):
    # A real kernel: use_book_style() must make the inline backend emit a PNG twice the display size.
    import base64
    import struct

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import matplotlib.pyplot as plt\nfrom gradlab.plotting import use_book_style\n"
        "use_book_style()\nfig, ax = plt.subplots(figsize=(3, 2))\nax.plot([0, 1])\nplt.show()")]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    (out,) = [o for o in nb.cells[0].outputs if "image/png" in o.get("data", {})]
    png = base64.b64decode(out["data"]["image/png"])
    width, height = struct.unpack(">II", png[16:24])
    meta = out["metadata"]["image/png"]
    assert abs(width - 2 * meta["width"]) <= 1 and abs(height - 2 * meta["height"]) <= 1
    assert meta["width"] <= 300 + 20      # displayed at the figure's own size

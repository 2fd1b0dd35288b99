"""gradlab.notebook.wrap_long_errors: long messages wrapped in a kernel, nothing done outside one."""
import nbformat
import pytest
from nbclient import NotebookClient

from gradlab.notebook import _wrapped, wrap_long_errors


def test_outside_ipython_it_does_nothing():
    assert wrap_long_errors() is False


def test_wrapping_keeps_every_word_within_the_width():
    message = " ".join(["word"] * 60)
    text = _wrapped(message, "RuntimeError: ", 40)
    lines = ("RuntimeError: " + text).splitlines()
    assert all(len(line) <= 40 for line in lines) and " ".join(text.split()) == message


def test_in_a_kernel_a_long_runtime_error_is_wrapped(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(
        "%xmode Minimal\nfrom gradlab.notebook import wrap_long_errors\nwrap_long_errors()\n"
        "raise RuntimeError('x ' * 150)")
    cell.metadata["tags"] = ["raises-exception"]
    nb.cells = [cell]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    assert error.ename == "RuntimeError"
    assert all(len(line) <= 100 + 20 for tb in error.traceback for line in tb.splitlines())
    assert len("\n".join(error.traceback).splitlines()) >= 3


@pytest.mark.parametrize("kwargs, args, error", [({"width": 5}, (), ValueError), ({}, (int,), TypeError)])
def test_bad_input(kwargs, args, error):
    with pytest.raises(error):
        wrap_long_errors(*args, **kwargs)

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


def _run(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    return ["\n".join(o.traceback) for c in nb.cells for o in c.outputs if o.output_type == "error"]


def test_readable_errors_one_line_at_top_level_frames_of_the_learners_code():
    import re
    expected, learners, in_check = _run(
        "from gradlab.notebook import readable_errors\nreadable_errors()\nimport torch",
        "torch.ones(3) + torch.ones(4)",
        "def helper(a):\n    return a @ a\n\ndef mine(x):\n    y = x * 2\n    return helper(y)",
        "mine(torch.ones(2, 3))",
        "from gradlab.exercises import check_code\n"
        "check_code(mine, lambda g: {'x': torch.ones(2, 3)}, lambda x: {'y': x})")
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", t) for t in (expected, learners, in_check)]
    # an expected error at a cell's top level: one message, no frames
    assert plain[0].strip().startswith("RuntimeError: The size of tensor a (3)")
    assert "Cell In" not in plain[0] and len(plain[0].strip().splitlines()) <= 2
    # an error inside the learner's functions: every cell frame, with line and code, no library frame
    for text in plain[1:]:
        assert "Cell In[3], line 6, in mine" in text and "return helper(y)" in text
        assert "Cell In[3], line 2, in helper" in text and "return a @ a" in text
        assert "site-packages" not in text and "torch/" not in text
        assert any(line.startswith("RuntimeError: ") for line in text.splitlines())
    # check_code names the case the learner's function failed on
    assert "(raised in mine on case 1 of 3 of the check" in plain[2]


def test_readable_errors_outside_ipython_and_bad_width():
    from gradlab.notebook import readable_errors
    assert readable_errors() is False
    with pytest.raises(ValueError, match="width"):
        readable_errors(width=3)

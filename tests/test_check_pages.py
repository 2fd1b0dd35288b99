"""tools.check_pages: each budget and page rule passes a clean chapter and fails a broken one."""
import base64
import struct
import zlib

import nbformat
import pytest

from tests.fixtures import MYST_HEADER
from tools import check_pages

HEADER = MYST_HEADER

EXERCISE = """
:::{{exercise}}
:label: ex-{n}

Write the gradient.
:::

```{{code-cell}} ipython3
def grad_{n}(x):
    return None  # your code here
```

```{{code-cell}} ipython3
check_tensors({{"dx": grad_{n}(x)}}, {{"dx": x.grad}})
```

````{{solution-start}} ex-{n}
:class: dropdown
````

```{{code-cell}} ipython3
def grad_{n}(x):
    return 2 * x
```

````{{solution-end}}
````
"""


def chapter(words=100, code_lines=3, minutes="about 40 minutes", exercises=3, line=""):
    prose = " ".join(["word"] * words)
    code = "\n".join(f"a{i} = {i}" for i in range(code_lines))
    body = (f"# Title\n\nIt takes {minutes}.\n\n{prose}\n\n```{{code-cell}} ipython3\n{code}\n{line}```\n"
            f"\n```{{code-cell}} ipython3\n:tags: [remove-cell]\n" + "\n".join(["assert True"] * 300)
            + "\n```\n")
    return HEADER + body + "".join(EXERCISE.format(n=i) for i in range(exercises))


def write(tmp_path, text, outputs=()):
    md = tmp_path / "chapter.md"
    md.write_text(text, encoding="utf-8")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.outputs = list(outputs)
    nb.cells = [cell]
    nbformat.write(nb, md.with_suffix(".ipynb"))
    return md


def problems(md):
    return check_pages.check_chapter(md)[1]


def test_a_clean_chapter_passes_and_is_measured(tmp_path):
    md = write(tmp_path, chapter())
    m, found = check_pages.check_chapter(md)
    assert found == []
    assert m.code_lines == 3 + 3 * 5          # shown cells only: the hidden 300 lines do not count
    assert m.minutes == 40 and m.exercises == 3 and m.coding_exercises == 3
    assert m.coding_stubs == ["grad_0", "grad_1", "grad_2"] and m.value_stubs == 0
    assert m.solutions_define == {"grad_0", "grad_1", "grad_2"}
    # the honest time: words/120 + code lines/8 + 10 per coding stub
    assert m.floor_minutes == pytest.approx(m.reading_words / 120 + 18 / 8 + 30)
    assert 100 <= m.words <= 100 + 20


def test_getting_started_needs_two_coding_exercises(tmp_path):
    (tmp_path / "00").mkdir()
    md = tmp_path / "00" / "00-start.md"
    md.write_text(chapter(exercises=2), encoding="utf-8")
    assert not any("coding exercises" in p for p in problems(md))
    md.write_text(chapter(exercises=1), encoding="utf-8")
    assert any("1 coding exercises" in p for p in problems(md))


def test_the_headline_pass_must_be_a_stub_with_a_solution(tmp_path):
    md = tmp_path / "03-vjp.md"
    md.write_text(chapter(), encoding="utf-8")
    assert any("the learner writes matmul_backward: no stub" in p for p in problems(md))
    named = chapter().replace("grad_0", "matmul_backward")
    md.write_text(named, encoding="utf-8")
    assert not any("matmul_backward" in p for p in problems(md))
    md.write_text(named.replace("def matmul_backward(x):\n    return 2 * x", "y = 2"), encoding="utf-8")
    assert any("matmul_backward: no solution block" in p for p in problems(md))


def test_a_value_stub_costs_four_minutes(tmp_path):
    md = write(tmp_path, chapter() + "\n```{code-cell} ipython3\nanswer = None  # your answer here\n```\n")
    m = check_pages.measure(md)
    assert m.value_stubs == 1 and len(m.coding_stubs) == 3


def test_prose_words_ignore_code_math_and_fences():
    text = "One two.\n\n```python\nnot prose at all\n```\n\n$$\na + b\n$$\n\n:::{note}\n:class: x\nthree\n:::\n"
    assert check_pages.prose_words(text) == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"words": 3001}, "over the budget of 3000"),
    ({"code_lines": 250}, "shown code lines, over the budget of 250"),
    ({"minutes": "a while"}, "states None minutes"),
    ({"minutes": "about 91 minutes"}, "at most 90"),
    ({"minutes": "about 30 minutes"}, "the honest time is at least 33"),
    ({"words": 1300, "minutes": "about 40 minutes"}, "the honest time is at least 43"),
    ({"exercises": 2}, "2 coding exercises"),
    ({"line": "y = '" + "x" * 90 + "'\n"}, "over 88 columns"),
    ({"line": "torch.set_num_threads(1)\n"}, "set_num_threads outside a timing cell"),
])
def test_each_budget_fails(tmp_path, kwargs, message):
    assert any(message in p for p in problems(write(tmp_path, chapter(**kwargs))))


def _png(width, height):
    raw = b"".join(b"\x00" + b"\xff" * (3 * width) for _ in range(height))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


@pytest.mark.parametrize("output, message", [
    (nbformat.v4.new_output("error", ename="ValueError", evalue="bad",
                            traceback=[f"line {i}" for i in range(13)]), "a traceback of 13 lines"),
    (nbformat.v4.new_output("stream", name="stdout", text="see /root/.venv/lib/x.py\n"), "machine path"),
    (nbformat.v4.new_output("stream", name="stderr",
                            text="C:\\Users\\me\\site-packages\\torch\n"), "machine path"),
    (nbformat.v4.new_output("stream", name="stdout", text="x" * 101 + "\n"), "over 100 columns"),
    (nbformat.v4.new_output("display_data", data={"image/png": _png(40, 20), "text/plain": "<Figure>"}),
     "stored at 1x"),
    (nbformat.v4.new_output("display_data", data={"image/png": _png(40, 20), "text/plain": "<Figure>"},
                            metadata={"image/png": {"width": 40, "height": 20}}), "stored at 1x"),
])
def test_each_output_rule_fails(tmp_path, output, message):
    found = problems(write(tmp_path, chapter(), outputs=[output]))
    assert any(message in p for p in found), found


def test_good_outputs_pass(tmp_path):
    outputs = [
        nbformat.v4.new_output("error", ename="RuntimeError", evalue="x", traceback=["RuntimeError: x"]),
        nbformat.v4.new_output("stream", name="stdout", text="dL/dx  (3,)  ok  within rtol 1e-05\n"),
        nbformat.v4.new_output("display_data", data={"image/png": _png(40, 20), "text/plain": "<Figure>"},
                               metadata={"image/png": {"width": 20, "height": 10}}),
    ]
    assert problems(write(tmp_path, chapter(), outputs=outputs)) == []


def test_main_reports_a_missing_chapter(tmp_path, capsys):
    assert check_pages.main([str(tmp_path / "nope.md")]) == 1
    assert "no such chapter source" in capsys.readouterr().out

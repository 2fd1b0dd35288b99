"""benchmarks.bench: every chapter turns into a plain script that Python can compile."""
from pathlib import Path

import pytest

from benchmarks.bench import chapter_script
from tools.toc import toc_notebooks

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = [ROOT / p for p in toc_notebooks(ROOT)]


@pytest.mark.parametrize("ipynb", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_script_compiles(ipynb):
    script = chapter_script(ipynb)
    compile(script, str(ipynb), "exec")     # magics such as the install cell's %pip become `pass`
    assert '    pass  # %pip install --quiet "gradlab @ git+' in script

"""A pytest plugin for the nbval run: after failures, say what to do (loaded with -p tools.nbval_hints).

When a chapter's stored outputs no longer match what its code prints ("Cell outputs differ"), or a
cell raised where the stored notebook did not, the run ends with the notebooks concerned and the
two ways out: regenerate the notebook from its .md, or restore the committed files with git.
"""
from __future__ import annotations

HINT = """\
What to do: the notebooks above no longer match what their code prints now.
  - You changed the chapter's .md (or gradlab) on purpose: regenerate and re-execute its notebook,
      make notebook NB={md}
    (without make: python -m tools.notebook {md}), then commit the .md and .ipynb together.
  - You did not mean to change it (you ran or saved the chapter in Jupyter, say): restore the
    committed files,
      git checkout -- {ipynb} {md}
"""


def _relative(path, start) -> str:
    import os
    try:
        return os.path.relpath(path, start).replace(os.sep, "/")
    except ValueError:                                    # another drive on Windows
        return str(path)


import pytest  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Tag a failed notebook cell's report with its notebook (reports cross xdist's workers)."""
    outcome = yield
    report = outcome.get_result()
    path = getattr(item, "path", None)
    if report.failed and path is not None and str(path).endswith(".ipynb"):
        report.user_properties.append(("notebook", _relative(path, item.config.invocation_params.dir)))


def failing_notebooks(reports) -> list[str]:
    found = []
    for report in reports:
        for key, value in getattr(report, "user_properties", []):
            if key == "notebook" and value not in found:
                found.append(value)
    return found


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    reports = terminalreporter.stats.get("failed", []) + terminalreporter.stats.get("error", [])
    notebooks = failing_notebooks(reports)
    if not notebooks:
        return
    terminalreporter.section("nbval: what to do")
    for nb in notebooks:
        terminalreporter.write_line(f"  {nb}")
    md = notebooks[0][:-len(".ipynb")] + ".md" if len(notebooks) == 1 else "chapters/NN-name.md"
    ipynb = notebooks[0] if len(notebooks) == 1 else "chapters/NN-name.ipynb"
    terminalreporter.write(HINT.format(md=md, ipynb=ipynb))

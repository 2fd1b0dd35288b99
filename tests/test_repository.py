"""Repository-level promises: exact pins, CI that runs the README's commands, valid workflows."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _requirement_lines():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith(("-c ", "-e ")):
            yield line


def test_every_direct_dependency_is_pinned_exactly():
    lines = list(_requirement_lines())
    assert lines, "requirements.txt lists no dependency"
    loose = [l for l in lines if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+", l)]
    assert not loose, f"not pinned with ==: {loose}"
    assert "torch==2.13.0" in lines
    text = (ROOT / "requirements.txt").read_text()
    assert "-e ." in text.splitlines(), "gradlab must be installed editable from requirements.txt"


def test_constraints_pin_the_whole_tree():
    lines = [l for l in (ROOT / "constraints.txt").read_text().splitlines() if l and not l.startswith("#")]
    assert all("==" in l for l in lines)
    assert "torch==2.13.0" in lines


def test_ci_runs_make_test():
    script = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", script, re.M)


def test_workflows_are_valid_and_use_the_readme_commands():
    # test.yml runs exactly .ci/run, which runs `make test` (test_ci_runs_make_test).
    readme = (ROOT / "README.md").read_text()
    for name, command in (("test.yml", "bash .ci/run"), ("pages.yml", "make book")):
        flow = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
        assert flow["jobs"], name
        runs = [step.get("run", "") for job in flow["jobs"].values() for step in job.get("steps", [])]
        assert any(r.strip() == command for r in runs), f"{name} does not run `{command}`"
        assert command.removeprefix("bash ") in readme

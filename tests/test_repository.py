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


def test_make_help_lists_every_target_the_readme_names():
    import re
    import subprocess
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`make ([a-z-]+)", readme))
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    shown = set(re.findall(r"^  make ([a-z-]+) ", listed, re.M))
    assert named and named <= shown, f"README names targets make help omits: {sorted(named - shown)}"
    table = set(re.findall(r"^\| `make ([a-z-]+)", readme, re.M))
    assert table >= shown - {"book-strict", "unit", "pairs", "nbval", "audit", "browser", "clean"}, \
        f"targets missing from the README's table: {sorted(shown - table)}"


def test_make_serve_without_a_book_says_what_to_do(tmp_path):
    import shutil
    import subprocess
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    done = subprocess.run(["make", "-s", "serve"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "run make book first" in done.stdout


def test_pages_deploys_only_what_passed_the_tests_with_least_privilege():
    pages = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())
    test = yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text())
    trigger = pages[True]                              # YAML reads the key `on` as True
    assert set(trigger) == {"workflow_run"} and trigger["workflow_run"]["workflows"] == [test["name"]]
    assert "success" in pages["jobs"]["build"]["if"]
    checkout = pages["jobs"]["build"]["steps"][0]
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}"
    assert pages["permissions"] == {} and pages["concurrency"]["cancel-in-progress"] is False
    assert pages["jobs"]["build"]["permissions"] == {"contents": "read"}
    assert pages["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert test["permissions"] == {"contents": "read"}
    assert test[True]["push"] == {"branches": ["main"]} and "pull_request" in test[True]

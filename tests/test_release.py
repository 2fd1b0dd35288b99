"""What a user who clones, installs or reuses the course relies on: licences, citation, metadata,
pins, ignores, README commands that run as typed, and one CI script for every CI."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pins(path):
    pins = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_licences_for_code_and_content():
    code = (ROOT / "LICENSE").read_text()
    assert code.startswith("MIT License") and "The Gradients by Hand authors" in code
    content = " ".join((ROOT / "LICENSE-CONTENT").read_text().split())
    assert "Creative Commons Attribution 4.0 International" in content
    assert "https://creativecommons.org/licenses/by/4.0/legalcode" in content
    readme = (ROOT / "README.md").read_text()
    assert "MIT" in readme and "CC BY 4.0" in readme
    assert "LICENSE-CONTENT" in readme


def test_package_metadata_has_its_own_description_and_licence():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert set(project["license-files"]) == {"LICENSE", "LICENSE-CONTENT"}
    readme = project["readme"]
    assert isinstance(readme, dict), "the package description must not be the course README"
    assert readme["text"].startswith("gradlab") and len(readme["text"]) < 1000
    assert "CC BY 4.0" in readme["text"]
    assert len(project["description"]) <= 120


def test_citation_file():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["title"].startswith("Gradients by Hand")
    assert cff["authors"] and cff["message"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert str(cff["version"]) == version
    # one licence for the content (a list would read as "either", offering the text under MIT);
    # the code's MIT licence is stated in the message
    assert cff["license"] == "CC-BY-4.0" and "MIT" in cff["message"]
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cff["repository-code"] == config["repository"]["url"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(cff["date-released"]))


def test_setuptools_and_wheel_are_pinned_and_build_with_the_pin():
    pins = _pins("constraints.txt")
    assert "setuptools" in pins and "wheel" in pins
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert requires == [f"setuptools=={pins['setuptools']}"]
    assert "setuptools wheel" in (ROOT / "Makefile").read_text(), "make venv installs them"
    for name in ("pypdf", "pypdfium2"):  # the PDF check's readers
        assert pins[name] == _pins("requirements.txt")[name]


def test_what_documented_commands_write_is_ignored():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for entry in ("build/", "_build/", ".venv/"):
        assert entry in ignored, entry


def test_readme_commands_run_through_the_venv():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    inline = re.findall(r"`([^`\n]+)`", readme)
    for command in [l for b in blocks for l in b.splitlines()] + inline:
        command = command.split("#")[0].strip()
        assert not re.match(r"(python3?|pip|jupyter(-book)?|pytest) ", command), (
            f"README runs {command!r} outside the venv: use .venv/bin/...")


def test_one_ci_script_for_every_ci():
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text())
    runs = [s["run"].strip() for job in flow["jobs"].values() for s in job["steps"] if "run" in s]
    assert runs == ["bash .ci/run"], "the test workflow runs .ci/run and nothing else"
    script = (ROOT / ".ci" / "run").read_text()
    assert "make test-threads" in script
    commands = [l for l in script.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    assert not any("apt-get" in l for l in commands), "make test obtains the browser itself"
    for name in ("test.yml", "pages.yml"):
        assert "download.pytorch.org" not in (ROOT / ".github" / "workflows" / name).read_text()

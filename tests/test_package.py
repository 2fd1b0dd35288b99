"""The package's public surface: every exported name exists, and importing it stays light."""
import importlib
import subprocess
import sys

import pytest

import gradlab

SUBMODULES = ["checking", "numerical", "graph", "jacobian", "functions", "gradient_check", "function_cases", "bptt", "layers",
              "exercises", "plotting", "engine", "data", "notebook", "rules", "forward"]


def test_all_names_are_exported():
    for name in gradlab.__all__:
        assert hasattr(gradlab, name), name


@pytest.mark.parametrize("module", SUBMODULES)
def test_submodule_all_names_exist(module):
    mod = importlib.import_module(f"gradlab.{module}")
    assert mod.__all__, module
    for name in mod.__all__:
        assert hasattr(mod, name), f"gradlab.{module}.{name}"


def test_every_module_is_named_in_the_package_docstring():
    for module in SUBMODULES:
        assert f"``gradlab.{module}``" in gradlab.__doc__, module


def test_import_does_not_pull_matplotlib_or_dynamo():
    # Importing gradlab (and every topic module but plotting) must stay cheap: no matplotlib, and not
    # torch._dynamo, which costs seconds and comes in through some torch imports (e.g. torch.compile).
    modules = ", ".join(f"gradlab.{m}" for m in SUBMODULES if m != "plotting")
    code = (f"import sys, gradlab, {modules}; "
            "print(sorted(m for m in ('matplotlib', 'torch._dynamo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_installed_as_an_editable_package_not_through_sys_path():
    import json
    from importlib.metadata import distribution

    dist = distribution("gradlab")  # raises PackageNotFoundError if it was not pip-installed
    direct_url = json.loads(dist.read_text("direct_url.json"))
    assert direct_url["dir_info"].get("editable") is True
    assert gradlab.__file__.endswith("src/gradlab/__init__.py")


def test_no_module_is_over_500_lines():
    # Issue 25: one module per chapter (layers.dense/norms/attention, engine.value/tensor), each short
    # enough to read as the reference of one chapter.
    from pathlib import Path

    root = Path(gradlab.__file__).parent
    sizes = {p.relative_to(root).as_posix(): len(p.read_text().splitlines()) for p in root.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n >= 500} == {}


@pytest.mark.parametrize("package, modules", [("layers", ["dense", "norms", "attention"]), ("engine", ["value", "tensor"])])
def test_the_chapter_modules_hold_every_public_name_once(package, modules):
    pkg = importlib.import_module(f"gradlab.{package}")
    owners = {}
    for m in modules:
        mod = importlib.import_module(f"gradlab.{package}.{m}")
        for name in mod.__all__:
            owners.setdefault(name, []).append(m)
            assert getattr(pkg, name) is getattr(mod, name), (package, m, name)
    assert sorted(owners) == sorted(pkg.__all__) and all(len(v) == 1 for v in owners.values()), owners

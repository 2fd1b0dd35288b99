"""The package's public surface: every exported name exists, and importing it stays light."""
import subprocess
import sys

import gradlab


def test_all_names_are_exported():
    for name in gradlab.__all__:
        assert hasattr(gradlab, name), name


def test_import_does_not_pull_matplotlib():
    code = "import sys, gradlab; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_installed_as_an_editable_package_not_through_sys_path():
    import json
    from importlib.metadata import distribution

    dist = distribution("gradlab")  # raises PackageNotFoundError if it was not pip-installed
    direct_url = json.loads(dist.read_text("direct_url.json"))
    assert direct_url["dir_info"].get("editable") is True
    assert gradlab.__file__.endswith("src/gradlab/__init__.py")

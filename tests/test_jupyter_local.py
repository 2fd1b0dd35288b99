"""Running locally, as a learner would: a chapter's .md opens as a notebook in Jupyter and runs.

Starts a Jupyter server from the pinned environment on 127.0.0.1 (with a token, root dir = the
repository, the jupytext server extension enabled by the config jupytext installs into the
environment, nothing from the user's own Jupyter config), opens ``chapters/00-getting-started.md``
through the server's REST contents API, checks it comes back as a notebook, starts a kernel of that
server and executes the notebook's code cells in it over the kernel's websocket.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

for _module, _package in (("jupyter_server", "jupyter_server"), ("jupytext", "jupytext"),
                           ("ipykernel", "ipykernel")):
    pytest.importorskip(_module, reason=f"{_package} is not installed (pinned in requirements.txt)")
websocket = pytest.importorskip(
    "websocket", reason="websocket-client is not installed (a dependency of jupyter_server)")

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "chapters/00-getting-started.md"
EXPECTED_OUTPUT = "Environment OK"
START_TIMEOUT = 30
CELL_TIMEOUT = 60


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, token: str, log: Path):
        self.proc, self.url, self.token, self.log = proc, url, token, log

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
        return json.loads(text) if text else {}

    def log_tail(self, n: int = 30) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-n:])


def _serve(tmp_path, root: Path):
    """Start a Jupyter server on root; yield it, stop it afterwards."""
    token = secrets.token_hex(24)
    # Fresh Jupyter/IPython dirs: none of the user's config or kernels, only the environment's
    # (where jupytext's jupyter_server_config.d/jupytext.json enables its server extension).
    runtime, config, data, ipython = (tmp_path / d for d in ("runtime", "config", "data", "ipython"))
    for d in (runtime, config, data, ipython):
        d.mkdir()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime), JUPYTER_CONFIG_DIR=str(config),
               JUPYTER_DATA_DIR=str(data), IPYTHONDIR=str(ipython), JUPYTER_PLATFORM_DIRS="0")
    log = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
           "--ServerApp.port=0", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
           f"--IdentityProvider.token={token}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI runners often run as root
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT)
    server = None
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while server is None:
            if proc.poll() is not None:
                pytest.fail(f"the Jupyter server exited with {proc.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the Jupyter server did not start in {START_TIMEOUT} s:\n"
                            f"{log.read_text()}")
            info = runtime / f"jpserver-{proc.pid}.json"
            if info.is_file():
                try:
                    port = json.loads(info.read_text())["port"]
                except (ValueError, KeyError):
                    port = None  # being written
                if port:
                    candidate = Server(proc, f"http://127.0.0.1:{port}", token, log)
                    try:
                        candidate.request("GET", "/api/status")
                        server = candidate
                    except (urllib.error.URLError, ConnectionError):
                        pass
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def jupyter(tmp_path):
    yield from _serve(tmp_path, ROOT)


def _message(session: str, code: str) -> dict:
    msg_id = uuid.uuid4().hex
    return {
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "learner",
                   "session": session, "date": datetime.now(timezone.utc).isoformat(),
                   "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }


def _execute(ws, session: str, code: str) -> tuple[str, list[str], list[dict]]:
    """Run code in the kernel; return (reply status, text outputs, error outputs)."""
    request = _message(session, code)
    ws.send(json.dumps(request))
    msg_id = request["header"]["msg_id"]
    status, texts, errors, idle = None, [], [], False
    deadline = time.monotonic() + CELL_TIMEOUT
    while status is None or not idle:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no reply within {CELL_TIMEOUT} s")
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "execute_reply":
            status = content["status"]
        elif kind == "status" and content.get("execution_state") == "idle":
            idle = True
        elif kind == "stream":
            texts.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            texts.append(content.get("data", {}).get("text/plain", ""))
        elif kind == "error":
            errors.append(content)
    return status, texts, errors


def test_chapter_md_opens_as_a_notebook_and_runs_in_a_kernel(jupyter):
    started = time.monotonic()
    model = jupyter.request("GET", f"/api/contents/{CHAPTER}?content=1")
    assert model["type"] == "notebook", (
        f"{CHAPTER} came back as {model['type']!r}, not a notebook: is jupytext's contents manager "
        f"enabled (jupyterlab_jupytext server extension)?\n{jupyter.log_tail()}")
    cells = model["content"]["cells"]
    code_cells = [c for c in cells if c["cell_type"] == "code"]
    assert code_cells, f"{CHAPTER} opened as a notebook with no code cell"

    # A kernel of that server, started in the chapter's folder as a notebook frontend would.
    kernel = jupyter.request("POST", "/api/kernels",
                             {"name": "python3", "path": str(Path(CHAPTER).parent)})
    session = uuid.uuid4().hex
    ws_url = (jupyter.url.replace("http://", "ws://")
              + f"/api/kernels/{kernel['id']}/channels?session_id={session}")
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {jupyter.token}"],
                                     timeout=CELL_TIMEOUT)
    outputs = []
    try:
        for n, cell in enumerate(code_cells, 1):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            status, texts, errors = _execute(ws, session, source)
            outputs += texts
            expected_error = "raises-exception" in cell.get("metadata", {}).get("tags", [])
            if not expected_error:
                detail = "; ".join(f"{e['ename']}: {e['evalue']}" for e in errors)
                assert status == "ok" and not errors, (
                    f"{CHAPTER}, code cell {n} of {len(code_cells)} failed ({status}): {detail}\n"
                    f"--- cell ---\n{source}")
    finally:
        ws.close()
        jupyter.request("DELETE", f"/api/kernels/{kernel['id']}")
    joined = "".join(outputs)
    assert EXPECTED_OUTPUT in joined, (
        f"{EXPECTED_OUTPUT!r} not in the outputs of {CHAPTER}:\n{joined[:2000]}")
    print(f"{CHAPTER}: {len(code_cells)} code cells ran in a kernel of the Jupyter server "
          f"in {time.monotonic() - started:.1f} s")


def _open_and_save(tmp_path, root: Path, chapters) -> dict:
    """Open each chapter's .md, then its .ipynb, through a server on root and save it back;
    return the bytes every file under chapters/ had before."""
    before = {p: p.read_bytes() for p in (root / "chapters").iterdir()}
    # As after `make notebook` (or a checkout that wrote the .ipynb last): the .ipynb is the newer
    # file, so jupytext compares the two as text before it opens the .md, and refuses if they differ.
    for ipynb in chapters:
        md_time = (root / Path(ipynb).with_suffix(".md")).stat().st_mtime
        os.utime(root / ipynb, (md_time + 60, md_time + 60))
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    gen = _serve(server_dir, root)
    jupyter = next(gen)
    try:
        for ipynb in chapters:
            for path in (Path(ipynb).with_suffix(".md"), Path(ipynb)):
                model = jupyter.request("GET", f"/api/contents/{path.as_posix()}?content=1")
                assert model["type"] == "notebook", f"{path} did not open as a notebook"
                jupyter.request("PUT", f"/api/contents/{path.as_posix()}",
                                {"type": "notebook", "format": "json", "content": model["content"]})
    finally:
        gen.close()
    return before


def test_a_chapter_written_by_make_notebook_survives_open_and_save(tmp_path):
    """tools.notebook writes both files as jupytext's contents manager saves them, even when the
    author wrapped the YAML of a figure's caption by hand."""
    from tools import notebook
    long_caption = "A caption much longer than the eighty columns at which jupytext's YAML writer wraps it."
    text = "\n".join([
        "---", "jupytext:", "  formats: ipynb,md:myst", "  text_representation:", "    extension: .md",
        "    format_name: myst", "    format_version: 0.13", "kernelspec:",
        "  display_name: Python 3 (ipykernel)", "  language: python", "  name: python3", "---", "",
        "# A chapter", "", "```{code-cell} ipython3", "---", "mystnb:", "  figure:",
        f"    caption: {long_caption}", "    name: fig-long", "---", "print(6 * 7)", "```", ""])
    root = tmp_path / "repo"
    (root / "chapters").mkdir(parents=True)
    (root / "jupytext.toml").write_bytes((ROOT / "jupytext.toml").read_bytes())
    (root / "chapters" / "01-long.md").write_text(text)
    notebook.build(root / "chapters" / "01-long.md")
    before = _open_and_save(tmp_path, root, ["chapters/01-long.ipynb"])
    changed = [p.name for p, data in before.items() if p.read_bytes() != data]
    assert not changed, f"opening and saving in Jupyter rewrote {changed}"


def test_opening_and_saving_every_chapter_changes_no_byte(tmp_path):
    """Open each toc chapter's .md as JupyterLab does (jupytext's contents manager, outputs from
    the paired .ipynb) and save it back: both files must come back byte for byte (on a copy)."""
    from tools.toc import toc_notebooks
    root = tmp_path / "repo"
    (root / "chapters").mkdir(parents=True)
    for name in ("jupytext.toml", "_toc.yml"):
        (root / name).write_bytes((ROOT / name).read_bytes())
    chapters = toc_notebooks(ROOT)
    for ipynb in chapters:
        for path in (ipynb, ipynb.with_suffix(".md")):
            (root / path).write_bytes((ROOT / path).read_bytes())
    before = _open_and_save(tmp_path, root, chapters)
    changed = [p.name for p, data in before.items() if p.read_bytes() != data]
    assert not changed, (
        f"opening and saving in Jupyter rewrote {changed}: the committed files are not in the form "
        f"jupytext writes; `make notebook NB=chapters/<name>.md` writes them in that form")
    extra = sorted(p.name for p in (root / "chapters").iterdir()
                   if p not in before and p.name != ".ipynb_checkpoints")
    assert not extra, f"saving created files: {extra}"

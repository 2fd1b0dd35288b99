"""Benchmark: what each chapter costs to execute and to validate, and what a book rebuild costs.

    python -m benchmarks.bench [--skip-book]      (or: make bench)
    python -m benchmarks.bench --only engine      (only the engine's training step; prints, writes nothing)

For every notebook in _toc.yml it measures
  * floor: the chapter's code cells run as one plain Python script (interpreter, imports, compute,
    and figures rendered to PNG where the chapter shows them; best of two runs);
  * nbval: `pytest --nbval` on that notebook alone (kernel start, every cell, output comparison);
then nbval over the whole book serially in one pytest process and over both cores with xdist (best
of two runs each), and
the book build: cold (fresh _build), no-op, and the edit cycle of one chapter (.md changed, its
.ipynb regenerated, book rebuilt, the edit checked in the HTML). Notebook executions are counted
by an IPython startup file in a private IPYTHONDIR, so every kernel that runs a chapter is seen.
It also times one training step of the chapters' MLP (2-32-32-3, ReLU then tanh, softmax
cross-entropy, SGD; batch 256, float32, CPU, one thread) with gradlab.engine.Tensor and with
PyTorch autograd in the same process, interleaved, and reports the ratio of the best times.
Results print as a table and are written to benchmarks/results/latest.md and latest.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from tools.toc import toc_notebooks

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
RESULTS = ROOT / "benchmarks" / "results"


class ExecutionCounter:
    """Counts kernel starts: an IPython startup script appends a line to a log for each one."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-ipython-"))
        self.log = self.dir / "executions.log"
        startup = self.dir / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-count.py").write_text(f"open({str(self.log)!r}, 'a').write('kernel\\n')\n")

    def env(self) -> dict:
        return {**os.environ, "IPYTHONDIR": str(self.dir)}

    def count(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0


def timed(cmd: list[str], env: dict | None = None, cwd: Path = ROOT, check: bool = True) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


# A plain script has no inline backend: under Agg, plt.show() would draw nothing, and the floor
# would leave out work the chapter really does. Here show() renders each open figure to PNG the way
# Jupyter's inline backend does (bbox_inches="tight"), then closes it.
SHOW_RENDERS = """\
import io
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as _plt
def _render_and_close(*args, **kwargs):
    for _num in _plt.get_fignums():
        _plt.figure(_num).savefig(io.BytesIO(), format="png", bbox_inches="tight")
    _plt.close("all")
_plt.show = _render_and_close
"""


def chapter_script(ipynb: Path) -> str:
    """The notebook's code cells as one script; expected-error cells are wrapped in try/except."""
    nb = nbformat.read(ipynb, as_version=4)
    parts = [SHOW_RENDERS]
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        # IPython magics (the %pip of the install cell) are not Python: a `pass` at their
        # indentation keeps the block they sit in valid.
        src = "\n".join(line[:len(line) - len(line.lstrip())] + "pass  # " + line.lstrip()
                        if line.lstrip().startswith(("%", "!")) else line
                        for line in cell.source.splitlines())
        if "raises-exception" in cell.metadata.get("tags", []):
            src = "try:\n" + "".join(f"    {line}\n" for line in src.splitlines()) + "except Exception:\n    pass\n"
        parts.append(src + "\n")
    return "\n".join(parts)


def nbval_cmd(paths: list[Path], workers: int = 0) -> list[str]:
    cmd = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
           "--nbval-sanitize-with", str(SANITIZE)]
    cmd += ["-n", str(workers), "--dist", "loadfile"] if workers else ["-p", "no:xdist"]
    return cmd + [str(p) for p in paths]


def bench_chapters(notebooks: list[Path]) -> dict:
    rows = []
    env = {**os.environ, "MPLBACKEND": "Agg"}
    with tempfile.TemporaryDirectory() as tmp:
        for nb in notebooks:
            script = Path(tmp) / (nb.stem.replace("-", "_") + ".py")
            script.write_text(chapter_script(ROOT / nb))
            timed([PY, str(script)], env=env, cwd=(ROOT / nb).parent)  # warm the file cache
            floor = min(timed([PY, str(script)], env=env, cwd=(ROOT / nb).parent) for _ in range(2))
            nbval = timed(nbval_cmd([ROOT / nb]))
            rows.append({"chapter": nb.as_posix(), "floor_s": floor, "nbval_s": nbval})
    paths = [ROOT / nb for nb in notebooks]
    serial = min(timed(nbval_cmd(paths)) for _ in range(2))
    parallel = min(timed(nbval_cmd(paths, workers=2)) for _ in range(2))
    floor_total = sum(r["floor_s"] for r in rows)
    return {"rows": rows, "floor_total_s": floor_total, "nbval_each_total_s": sum(r["nbval_s"] for r in rows),
            "nbval_serial_s": serial, "nbval_parallel_s": parallel,
            "serial_ratio": serial / floor_total, "parallel_ratio": parallel / floor_total}


def bench_book(notebooks: list[Path]) -> dict:
    counter = ExecutionCounter()
    env = counter.env()
    make = ["make", "--no-print-directory", "book"]
    out = {}
    shutil.rmtree(ROOT / "_build" / "html", ignore_errors=True)
    shutil.rmtree(ROOT / "_build" / ".doctrees", ignore_errors=True)
    shutil.rmtree(ROOT / "_build" / ".jupyter_cache", ignore_errors=True)
    (ROOT / "_build" / ".book-stamp").unlink(missing_ok=True)
    before = counter.count()
    out["cold_s"] = timed(make, env=env)
    out["cold_executions"] = counter.count() - before
    before = counter.count()
    out["noop_s"] = timed(make, env=env)
    out["noop_executions"] = counter.count() - before

    # The edit cycle on the smallest chapter: change its .md, regenerate its .ipynb, rebuild.
    chapter = ROOT / notebooks[0]
    md, ipynb = chapter.with_suffix(".md"), chapter
    saved_md, saved_nb = md.read_bytes(), ipynb.read_bytes()
    marker = f"Benchmark edit marker {int(time.time())}"
    try:
        md.write_text(md.read_text() + f"\n{marker}\n")
        before = counter.count()
        start = time.perf_counter()
        timed([PY, "-m", "tools.notebook", str(md)], env=env)
        timed(make, env=env)
        out["edit_s"] = time.perf_counter() - start
        out["edit_executions"] = counter.count() - before
        page = ROOT / "_build" / "html" / notebooks[0].with_suffix(".html")
        out["edit_visible"] = marker in page.read_text()
    finally:
        md.write_bytes(saved_md)
        ipynb.write_bytes(saved_nb)
        timed(make, env=env)  # leave the built book matching the committed sources
    out["edit_chapter"] = notebooks[0].as_posix()
    return out


def engine_steps(batch: int = 256, width: int = 32, lr: float = 0.3):
    """Two step functions training chapter 07's MLP from the same weights: gradlab.engine and autograd.

    The MLP: 2 -> width (ReLU) -> width (tanh) -> 3 logits, softmax cross-entropy, plain SGD.
    """
    import math

    import torch
    import torch.nn.functional as F

    from gradlab.engine import Tensor, cross_entropy

    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 2, generator=g)
    labels = torch.randint(0, 3, (batch,), generator=g)
    init = []
    for fan_in, fan_out in ((2, width), (width, width), (width, 3)):
        init += [torch.randn(fan_in, fan_out, generator=g) * math.sqrt(2.0 / fan_in), torch.zeros(fan_out)]

    def logits_of(P, x):
        h1 = (x @ P[0] + P[1]).relu()
        h2 = (h1 @ P[2] + P[3]).tanh()
        return h2 @ P[4] + P[5]

    mine = [Tensor(p.clone()) for p in init]
    x_mine = Tensor(x, requires_grad=False)

    def engine_step():
        cross_entropy(logits_of(mine, x_mine), labels).backward()
        for p in mine:
            p.data -= lr * p.grad
            p.grad = None

    leaves = [p.clone().requires_grad_() for p in init]

    def torch_step():
        F.cross_entropy(logits_of(leaves, x), labels).backward()
        with torch.no_grad():
            for p in leaves:
                p -= lr * p.grad
                p.grad = None

    return engine_step, torch_step


def bench_engine(rounds: int = 25, steps: int = 50) -> dict:
    """Best time per step of each, over interleaved rounds (so a busy moment hits both alike)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        engine_step, torch_step = engine_steps()
        best = {"engine": float("inf"), "torch": float("inf")}
        for fn in (engine_step, torch_step):
            for _ in range(20):
                fn()  # warm-up
        for _ in range(rounds):
            for name, fn in (("engine", engine_step), ("torch", torch_step)):
                start = time.perf_counter()
                for _ in range(steps):
                    fn()
                best[name] = min(best[name], (time.perf_counter() - start) / steps)
    finally:
        torch.set_num_threads(threads)
    return {"engine_step_us": best["engine"] * 1e6, "torch_step_us": best["torch"] * 1e6,
            "ratio": best["engine"] / best["torch"], "torch_version": torch.__version__}


def engine_line(engine: dict) -> str:
    return (f"gradlab.engine.Tensor training step (MLP 2-32-32-3 of ch. 07/09, batch 256, float32, CPU, 1 thread): "
            f"{engine['engine_step_us']:.0f} us vs PyTorch {engine['torch_version']} autograd "
            f"{engine['torch_step_us']:.0f} us, ratio {engine['ratio']:.2f}x (target <= 2x).")


def report(chapters: dict, book: dict | None, engine: dict | None = None) -> str:
    lines = [f"# Benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, Python {platform.python_version()})", "",
             "| chapter | plain script (floor) s | nbval s | nbval / floor |", "| --- | ---: | ---: | ---: |"]
    for r in chapters["rows"]:
        lines.append(f"| {r['chapter']} | {r['floor_s']:.2f} | {r['nbval_s']:.2f} | {r['nbval_s'] / r['floor_s']:.2f} |")
    lines += [f"| **sum** | {chapters['floor_total_s']:.2f} | {chapters['nbval_each_total_s']:.2f} | "
              f"{chapters['nbval_each_total_s'] / chapters['floor_total_s']:.2f} |", "",
              "| whole book | s | / summed floor | target |", "| --- | ---: | ---: | --- |",
              f"| nbval, serial, one pytest process | {chapters['nbval_serial_s']:.2f} | {chapters['serial_ratio']:.2f} | <= 1.30 |",
              f"| nbval, 2 workers (xdist, loadfile) | {chapters['nbval_parallel_s']:.2f} | {chapters['parallel_ratio']:.2f} | < 1.00 |"]
    slowest = max(chapters["rows"], key=lambda r: r["floor_s"])
    lines.append(f"\nSlowest chapter as a plain script: {slowest['chapter']} ({slowest['floor_s']:.2f} s; target < 10 s).")
    if book:
        lines += ["", "| book build | s | notebook executions | target |", "| --- | ---: | ---: | --- |",
                  f"| cold `make book` (fresh _build) | {book['cold_s']:.2f} | {book['cold_executions']} | 0 executions |",
                  f"| no-op `make book` | {book['noop_s']:.2f} | {book['noop_executions']} | < 5 s |",
                  f"| edit cycle of {book['edit_chapter']} (.md edited, `make notebook`, `make book`) | {book['edit_s']:.2f} | "
                  f"{book['edit_executions']} | exactly 1 execution; edit visible: {book['edit_visible']} |"]
    if engine:
        lines += ["", engine_line(engine)]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-book", action="store_true", help="only the chapter timings")
    parser.add_argument("--only", choices=["engine"],
                        help="run one part only and print it (engine: the gradlab.engine training step)")
    args = parser.parse_args(argv)
    if args.only == "engine":
        print(engine_line(bench_engine()))
        return 0
    notebooks = toc_notebooks(ROOT)
    chapters = bench_chapters(notebooks)
    book = None if args.skip_book else bench_book(sorted(notebooks, key=lambda n: (ROOT / n).stat().st_size))
    engine = bench_engine()
    text = report(chapters, book, engine)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(text)
    (RESULTS / "latest.json").write_text(json.dumps({"chapters": chapters, "book": book, "engine": engine}, indent=2) + "\n")
    print(f"written: {RESULTS / 'latest.md'}, {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

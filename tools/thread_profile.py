"""An IPython profile whose startup file fixes PyTorch's thread count inside every kernel.

    python -m tools.thread_profile DIR      # writes DIR/profile_default/startup/00-threads.py

With ``IPYTHONDIR=DIR`` and ``GBH_TORCH_THREADS=N`` in its environment, every kernel (nbval's
included) calls ``torch.set_num_threads(N)`` before the first cell. ``OMP_NUM_THREADS`` cannot do
this: PyTorch caps it at the number of cores, so on a 2-core machine "4 threads" would run with 2.
``set_num_threads`` is not capped, so 3 and 4 threads are really tested on a small machine.
"""
from __future__ import annotations

import sys
from pathlib import Path

STARTUP = '''\
import os as _os

if _os.environ.get("GBH_TORCH_THREADS"):
    import torch as _torch
    _torch.set_num_threads(int(_os.environ["GBH_TORCH_THREADS"]))
    del _torch
del _os
'''


def write_profile(ipython_dir: Path) -> Path:
    startup = Path(ipython_dir) / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    path = startup / "00-threads.py"
    path.write_text(STARTUP, encoding="utf-8")
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    print(write_profile(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

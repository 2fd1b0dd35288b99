"""Which extra package index `make venv` gives pip for torch: PyTorch's CPU wheels, when usable.

    python -m tools.torch_index [URL [SECONDS]]   # prints "--extra-index-url URL", or nothing

On Linux, PyPI's torch wheel depends on CUDA packages (gigabytes) that a CPU-only course never
uses; PyTorch's CPU index (default below) serves the same version built for the CPU as
``2.13.0+cpu``, which satisfies ``torch==2.13.0`` and, being the newer local version, is the one
pip picks. The index is offered only if it answers within SECONDS (default 5); otherwise pip
uses the configured indexes alone (a local mirror, say) and nothing waits on an unreachable host.
macOS and Windows print nothing: their PyPI wheels are CPU builds already. The reason goes to
stderr.
"""
from __future__ import annotations

import platform
import sys
import time
import urllib.request
from typing import Callable

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_SECONDS = 5.0


def probe(url: str, seconds: float) -> str | None:
    """None if url/torch/ answers within seconds, else why not."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=seconds) as resp:
            resp.read(1)
        return None
    except Exception as err:  # noqa: BLE001 - any failure means: do not use it
        return f"{type(err).__name__}: {getattr(err, 'reason', err)}"


def pip_args(url: str = CPU_INDEX, seconds: float = PROBE_SECONDS, *,
             system: Callable[[], str] | None = None,
             reach: Callable[[str, float], str | None] | None = None) -> tuple[list[str], str]:
    """(the extra pip arguments, why) for installing requirements.txt on this machine."""
    system = system or platform.system
    reach = reach or probe
    if system() != "Linux":
        return [], f"{system()}: torch from the configured indexes (its wheels are CPU builds)"
    if not url:
        return [], "no CPU index set: torch from the configured indexes"
    start = time.monotonic()
    why_not = reach(url, seconds)
    took = time.monotonic() - start
    if why_not is None:
        return ["--extra-index-url", url], f"torch: the CPU build from {url}"
    return [], (f"{url} not reachable ({why_not}, {took:.1f} s): torch from the configured "
                "indexes")


def main(argv: list[str]) -> int:
    url = argv[0] if argv else CPU_INDEX
    seconds = float(argv[1]) if len(argv) > 1 else PROBE_SECONDS
    args, why = pip_args(url, seconds)
    print(why, file=sys.stderr)
    print(" ".join(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

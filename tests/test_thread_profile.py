"""tools.thread_profile: a kernel started with the profile really runs N PyTorch threads."""
import os

import nbformat
from nbclient import NotebookClient

from tools.thread_profile import write_profile


def _kernel_reports(env_updates):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import torch\nprint(torch.get_num_threads(), torch.backends.cpu.get_cpu_capability())")]
    saved = {k: os.environ.get(k) for k in env_updates}
    os.environ.update(env_updates)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb.cells[0].outputs[0]["text"].split()


def test_the_profile_sets_more_threads_than_cores(tmp_path):
    write_profile(tmp_path)
    threads, _ = _kernel_reports({"IPYTHONDIR": str(tmp_path), "GBH_TORCH_THREADS": "4",
                                  "OMP_NUM_THREADS": "1"})
    assert threads == "4"       # not capped at the core count, unlike OMP_NUM_THREADS
    threads, _ = _kernel_reports({"IPYTHONDIR": str(tmp_path), "GBH_TORCH_THREADS": "3"})
    assert threads == "3"


def test_default_kernels_can_be_forced(tmp_path):
    write_profile(tmp_path)
    _, capability = _kernel_reports({"IPYTHONDIR": str(tmp_path), "ATEN_CPU_CAPABILITY": "default"})
    assert capability == "DEFAULT"

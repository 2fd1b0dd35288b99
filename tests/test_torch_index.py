"""tools.torch_index: the CPU index for torch on Linux when it answers, else the configured indexes."""
import time

from tools.torch_index import CPU_INDEX, main, pip_args, probe


def test_linux_with_the_cpu_index_reachable_adds_it():
    args, why = pip_args(system=lambda: "Linux", reach=lambda url, s: None)
    assert args == ["--extra-index-url", CPU_INDEX]
    assert "CPU build" in why


def test_linux_without_it_falls_back_and_says_why():
    args, why = pip_args(system=lambda: "Linux", reach=lambda url, s: "URLError: no route")
    assert args == []
    assert "not reachable (URLError: no route" in why and "configured indexes" in why


def test_macos_and_windows_never_ask():
    def reach(url, seconds):
        raise AssertionError("must not probe")
    for system in ("Darwin", "Windows"):
        assert pip_args(system=lambda: system, reach=reach)[0] == []


def test_the_probe_gives_up_within_its_timeout():
    # 192.0.2.1 is TEST-NET-1 (never routed): either refused at once or timed out.
    start = time.monotonic()
    why = probe("https://192.0.2.1/whl/cpu", 1.0)
    assert why is not None
    assert time.monotonic() - start < 5


def test_main_prints_the_pip_arguments_only(capsys, monkeypatch):
    monkeypatch.setattr("tools.torch_index.platform.system", lambda: "Darwin")
    assert main([]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == ""
    assert "Darwin" in err

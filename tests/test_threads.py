"""``--threads``: the default leaves out the CPUs other processes keep busy, and every
backend that takes a count gets it (no timing checks: the speed is in docs/results/speed.md)."""
import os
import subprocess
import sys
import time

import pytest

from wganx.build import load_backend
from wganx.errors import WganxError
from wganx.threads import THREAD_VARS, busy_cpus, default_threads, resolve_threads, usable_cpus

from conftest import available_backends


def test_resolve_keeps_a_count_and_chooses_for_zero():
    assert resolve_threads(None) is None and resolve_threads(3) == 3
    assert 1 <= resolve_threads(0) <= usable_cpus() <= (os.cpu_count() or 1)
    with pytest.raises(WganxError, match="--threads must not be negative, got -1"):
        resolve_threads(-1)


def test_a_busy_process_is_counted_and_the_default_leaves_its_cpu():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started and spinning: runnable in every sample from now on
        assert busy_cpus() >= 1
        assert default_threads() <= max(1, usable_cpus() - 1)
    finally:
        busy.kill()
        busy.wait(timeout=10)


@pytest.fixture
def restore_threads(monkeypatch):
    import torch

    for var in THREAD_VARS:
        monkeypatch.delenv(var, raising=False)  # monkeypatch restores what was there
    before = torch.get_num_threads()
    yield torch
    torch.set_num_threads(before)


def test_torch_gets_the_count_and_openmp_its_variables(restore_threads):
    if "torch" not in available_backends():
        pytest.skip("backend torch is not available")
    load_backend("torch", threads=1)
    assert restore_threads.get_num_threads() == 1
    assert all(os.environ[var] == "1" for var in THREAD_VARS)


def test_a_backend_record_sets_the_variables_its_framework_reads_before_it_loads(tmp_path, monkeypatch):
    """``BackendSpec.thread_env``: a framework that reads its thread count once, when its runtime
    starts (XLA_FLAGS), finds it set when the backend's module is first imported."""
    import wganx
    from wganx.plugins import Registry
    from wganx.records import BackendSpec

    (tmp_path / "xla_like_backend.py").write_text(
        "import os\n"
        "from wganx.backend import Backend\n"
        "SEEN_AT_IMPORT = os.environ.get('XLA_FLAGS')\n"
        "class XlaLike(Backend):\n"
        "    name = 'xla-like'\n"
        "    def compile(self, program): raise NotImplementedError\n"
        "    def versions(self): return {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    for var in THREAD_VARS:
        monkeypatch.delenv(var, raising=False)

    class Plugin:
        @wganx.hookimpl
        def wganx_backends(self):
            return [BackendSpec("xla-like", "xla_like_backend:XlaLike",
                                thread_env=lambda n: {"XLA_FLAGS": f"--xla_cpu_threads={n}"})]

    load_backend("xla-like", reg=Registry.from_plugins([Plugin()], entry_points=False), threads=3)
    import xla_like_backend

    assert xla_like_backend.SEEN_AT_IMPORT == "--xla_cpu_threads=3"
    assert all(os.environ[var] == "3" for var in THREAD_VARS)


def test_a_trainer_applies_its_config(tmp_path, restore_threads):
    from test_safety import toy_config
    from wganx.training import Trainer

    if "torch" not in available_backends():
        pytest.skip("backend torch is not available")
    Trainer(toy_config(tmp_path / "run", backend="torch", threads=1)).close()
    assert restore_threads.get_num_threads() == 1

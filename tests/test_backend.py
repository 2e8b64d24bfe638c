"""wganx.backend: what the base class of every backend checks and does for it, tested on a
backend that adds nothing (the contract's own behaviour, not a framework's)."""
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from wganx.backend import Backend
from wganx.distributed import SINGLE
from wganx.errors import BackendUnavailableError, WganxError


class Bare(Backend):
    """The least a backend is: a name, the two abstract methods, and ops (none are called
    here; the base class sets ``ops.sync_batch_norm``)."""

    name = "bare"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ops = SimpleNamespace()

    def compile(self, program):
        raise NotImplementedError

    def versions(self):
        return {}


def test_settings_are_checked_and_kept():
    backend = Bare("cuda", device_id="1", type_config="double")
    assert (backend.context, backend.device_id, backend.type_config) == ("cuda", 1, "double")
    assert backend.device_name() == "cuda:1" and Bare().device_name() == "cpu"
    with pytest.raises(WganxError, match="unknown context 'gpu'; choose one of: cpu, cuda, cudnn"):
        Bare("gpu")
    with pytest.raises(WganxError, match="unknown type config 'bf16'; choose one of: float, half, double"):
        Bare(type_config="bf16")


def test_mixed_precision_on_the_cpu_is_refused_unless_the_backend_allows_it():
    with pytest.raises(BackendUnavailableError, match="-t half .* needs -c cuda or -c cudnn with bare"):
        Bare(type_config="half")

    class HalfOnCpu(Bare):
        half_on_cpu = True

    assert HalfOnCpu(type_config="half").type_config == "half"


def test_a_backend_without_engines_stays_one_process():
    backend = Bare()
    assert backend.replicate() is SINGLE and backend.replicate("none") is SINGLE
    assert backend.ops.sync_batch_norm is False
    with pytest.raises(WganxError, match="backend 'bare' cannot run data-parallel with --distribute torchrun; "
                                         r"its engines: none \(it runs on one device\)"):
        backend.replicate("torchrun")
    backend.shutdown()
    backend.shutdown()  # again: nothing


@pytest.mark.parametrize("protobuf_major,expected", [("3", "python"), ("4", None), ("5", None)])
def test_pure_python_protobuf_only_for_protobuf_3(protobuf_major, expected):
    """protobuf 3's C++ implementation breaks TensorFlow; newer ones are left alone, and a
    value the user set is kept."""
    code = textwrap.dedent(f"""
        import importlib.metadata, os
        from wganx import backend
        importlib.metadata.version = lambda name: {protobuf_major!r} + ".20.3"
        backend.prefer_python_protobuf()
        print(os.environ.get(backend.PROTOBUF_IMPLEMENTATION))
        os.environ[backend.PROTOBUF_IMPLEMENTATION] = "upb"
        backend.prefer_python_protobuf()
        print(os.environ[backend.PROTOBUF_IMPLEMENTATION])
    """)
    env = {k: v for k, v in __import__("os").environ.items() if k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == [str(expected), "upb"], out.stderr

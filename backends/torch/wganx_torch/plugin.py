"""Registers the PyTorch backend; imports no framework."""
import sys

from wganx import hookimpl
from wganx.distributed import world_from_env
from wganx.records import BackendSpec, EngineSpec

TORCHRUN_EXAMPLE = "torchrun --standalone --nproc-per-node 2 -m wganx train --backend torch ..."


def torchrun_world(environ):
    """torchrun (and torch.distributed.launch) give every process WORLD_SIZE, RANK, LOCAL_RANK."""
    if "TORCHELASTIC_RUN_ID" in environ or ("WORLD_SIZE" in environ and "LOCAL_RANK" in environ):
        return world_from_env(environ, "torchrun", "WORLD_SIZE", "RANK")
    return None


def torchrun_command(n, context):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n)], {}


TORCHRUN = EngineSpec("torchrun", launcher="torchrun", example=TORCHRUN_EXAMPLE, detect=torchrun_world,
                      command=torchrun_command)


@hookimpl
def wganx_backends():
    return [BackendSpec(
        "torch", factory="wganx_torch.backend:TorchBackend", requires=("torch",),
        install_hint="pip install wganx-torch (or: pip install torch)",
        capabilities=frozenset({"cpu", "cuda", "cudnn", "half", "double"}),
        description="PyTorch autograd, eager steps with fused optimizer updates",
        engines=(TORCHRUN,))]

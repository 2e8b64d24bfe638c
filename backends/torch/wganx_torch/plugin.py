"""Registers the PyTorch backend; imports no framework."""
from wganx import hookimpl
from wganx.records import BackendSpec


@hookimpl
def wganx_backends():
    return [BackendSpec(
        "torch", factory="wganx_torch.backend:TorchBackend", requires=("torch",),
        install_hint="pip install wganx-torch (or: pip install torch)",
        capabilities=frozenset({"cpu", "cuda", "cudnn", "half", "double"}),
        description="PyTorch autograd, eager steps with fused optimizer updates",
        engines=("torchrun",))]

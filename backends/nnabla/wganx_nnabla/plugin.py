"""Registers the NNabla backend; imports no framework."""
from wganx import hookimpl
from wganx.records import BackendSpec


@hookimpl
def wganx_backends():
    return [BackendSpec(
        "nnabla", factory="wganx_nnabla.backend:NNablaBackend", requires=("nnabla",),
        install_hint="pip install wganx-nnabla (nnabla needs Python 3.8 to 3.10)",
        capabilities=frozenset({"cpu", "cuda", "cudnn", "half"}),
        description="NNabla static graphs built once per shape, nn.grad double backward",
        engines=("mpi",))]

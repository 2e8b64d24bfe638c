"""Registers the NNabla backend; imports no framework."""
import sys

from wganx import hookimpl
from wganx.distributed import world_from_env
from wganx.records import BackendSpec, EngineSpec

MPIRUN_EXAMPLE = "mpirun -n 4 wganx train --backend nnabla -c cudnn ..."
# Open MPI; MPICH and Intel MPI; PMIx
MPI_VARIABLES = (("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"), ("PMI_SIZE", "PMI_RANK"),
                 ("PMIX_SIZE", "PMIX_RANK"))


def mpi_world(environ):
    """The size and rank that mpirun gives every process it starts."""
    for size, rank in MPI_VARIABLES:
        if size in environ:
            return world_from_env(environ, "mpirun", size, rank)
    return None


def mpirun_command(n, context):
    return ["mpirun", "-n", str(n), sys.executable], {}


MPI = EngineSpec("mpi", launcher="mpirun", example=MPIRUN_EXAMPLE, detect=mpi_world, command=mpirun_command)


@hookimpl
def wganx_backends():
    return [BackendSpec(
        "nnabla", factory="wganx_nnabla.backend:NNablaBackend", requires=("nnabla",),
        install_hint="pip install wganx-nnabla (nnabla needs Python 3.8 to 3.10)",
        capabilities=frozenset({"cpu", "cuda", "cudnn", "half"}),
        description="NNabla static graphs built once per shape, nn.grad double backward",
        engines=(MPI,))]

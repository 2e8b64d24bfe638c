"""The NNabla backend: ops on ``nn.Variable``, each step a static graph built once per shape.

This follows NNabla's own WGAN-GP example (``sony/nnabla-examples``, ``GANs/wgan-gp``): the
graph of each step is built once, inputs are fed through ``.d``, the gradient penalty
differentiates with ``nn.grad`` inside the graph, the fake batch carries ``need_grad =
False`` so the critic's backward stops at the generator, and a step is ``zero_grad;
forward(clear_no_need_grad=True); backward(clear_buffer=True); update``.

Two things differ from a script that uses the global parameter scope:

* every session owns its ``nn.Variable`` parameters, keyed by canonical name, and its
  context (applied with ``nn.context_scope`` while building and running), so sessions and
  backends in one process do not collide;
* the network that a step does not train sees its parameters through views that share the
  data but not ``need_grad``, so no weight gradient of the other network is computed
  (the example computes them and throws them away).

Data-parallel under ``mpirun`` (:mod:`wganx.distributed`), as the NNabla examples train on
several GPUs: a ``MultiProcessDataParallelCommunicator`` (nnabla-ext-cuda with MPI and
NCCL; there is no CPU one), each rank on GPU ``comm.local_rank`` with its slice of the global
batch, ``comm.all_reduce(..., division=True)`` of the gradients and the step's scalars, and
``F.sync_batch_normalization`` for synchronised batch norm.
"""
from __future__ import annotations

from wganx.backend import prefer_python_protobuf

prefer_python_protobuf()  # before NNabla imports protobuf: TensorFlow may load beside it

import nnabla as nn  # noqa: E402
from nnabla.ext_utils import get_extension_context

from wganx.algorithm import Program
from wganx.backend import Backend
from wganx.distributed import SINGLE, Replicas, launch_of
from wganx.errors import BackendUnavailableError

from .ops import NNablaOps
from .plugin import MPI
from .session import NNablaSession


class NNablaBackend(Backend):
    """NNabla with its extension context (``cpu``, ``cuda``, ``cudnn``; ``-t half`` is
    NNabla's mixed precision with loss scaling)."""

    name = "nnabla"

    def __init__(self, context="cpu", device_id=0, type_config="float"):
        super().__init__(context, device_id, type_config)
        if type_config == "double":
            raise BackendUnavailableError("the nnabla backend supports -t float and -t half, not double")
        if context != "cpu":
            try:
                import nnabla_ext.cuda  # noqa: F401
            except ImportError as e:
                raise BackendUnavailableError(
                    f"-c {context} needs NNabla's CUDA extension ({e}); install the one matching "
                    f"your CUDA: pip install nnabla-ext-cuda<version> (e.g. nnabla-ext-cuda120 "
                    f"for CUDA 12.0), of the same version as nnabla {nn.__version__}") from None
        self.ctx = get_extension_context(context, device_id=str(self.device_id), type_config=type_config)
        # the solvers' own arithmetic (RMSProp) runs in float even under mixed precision
        self.float_ctx = get_extension_context(context, device_id=str(self.device_id), type_config="float")
        self.ops = NNablaOps()
        self.comm = None

    def _start_engine(self, engine):
        launch = launch_of(engine, MPI)
        if launch is None:
            return SINGLE
        if self.context == "cpu":
            raise BackendUnavailableError(
                f"this process is one of {launch[1]} that mpirun started, but NNabla's data-parallel "
                "communicator runs on GPUs only: use -c cudnn, with nnabla-ext-cuda (built with MPI "
                "and NCCL), Open MPI and NCCL installed")
        import nnabla.communicators as C

        make = getattr(C, "MultiProcessDataParallelCommunicator", None) or C.MultiProcessDataParalellCommunicator
        try:
            comm = make(self.ctx)
            comm.init()
        except Exception as exc:  # noqa: BLE001 - NNabla raises RuntimeError or its own errors
            raise BackendUnavailableError(
                f"NNabla's communicator did not start ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r});"
                " it needs nnabla-ext-cuda built with MPI and NCCL (pip install nnabla-ext-cuda<version>), "
                "Open MPI (mpirun) and NCCL") from None
        self.comm, self.ops.comm = comm, comm
        self.device_id = int(comm.local_rank)  # each rank on its own GPU, as the NNabla examples do
        self.ctx = get_extension_context(self.context, device_id=str(self.device_id), type_config=self.type_config)
        self.float_ctx = get_extension_context(self.context, device_id=str(self.device_id), type_config="float")
        return Replicas(size=comm.size, engine="mpi", process=comm.rank, processes=comm.size, first=comm.rank)

    def shutdown(self, finished=True):
        if self.comm is not None and finished:
            self.comm.barrier()

    def versions(self):
        out = {"nnabla": nn.__version__}
        if self.context != "cpu":
            try:
                import nnabla_ext.cuda as cu
                out["nnabla-ext-cuda"] = getattr(cu, "__version__", "?")
            except ImportError:
                pass
        return out

    def compile(self, program: Program) -> NNablaSession:
        return NNablaSession(self, program)

"""The PyTorch backend: the device, mixed precision, threads and torchrun's job; the ops
are in :mod:`wganx_torch.ops`, the compiled steps in :mod:`wganx_torch.session`."""
from __future__ import annotations

import datetime
import gc
import os

import torch

from wganx.algorithm import Program
from wganx.backend import Backend
from wganx.distributed import SINGLE, Replicas, launch_of
from wganx.errors import BackendUnavailableError

from .ops import TorchOps
from .plugin import TORCHRUN
from .session import TorchSession


class TorchBackend(Backend):
    """PyTorch on the CPU or a CUDA GPU (``cuda`` and ``cudnn`` both mean the GPU, with
    cuDNN autotuning enabled for ``cudnn``); data-parallel under torchrun (NCCL on GPUs,
    gloo on the CPU), each rank on GPU ``LOCAL_RANK``."""

    name = "torch"
    #: how long a collective waits for the other ranks before it fails (torch's NCCL default)
    collective_timeout = datetime.timedelta(minutes=10)

    def __init__(self, context="cpu", device_id=0, type_config="float"):
        super().__init__(context, device_id, type_config)
        if context == "cpu":
            self.device = torch.device("cpu")
        else:
            if not torch.cuda.is_available():
                raise BackendUnavailableError(
                    f"-c {context} needs a CUDA GPU, but this torch ({torch.__version__}) sees none; "
                    "install a CUDA build of torch (pip install torch) on a machine with an NVIDIA GPU")
            if device_id >= torch.cuda.device_count():
                raise BackendUnavailableError(
                    f"-d {device_id}: only {torch.cuda.device_count()} CUDA device(s) present")
            self.device = torch.device("cuda", device_id)
            torch.backends.cudnn.benchmark = context == "cudnn"
        self.dtype = torch.float64 if type_config == "double" else torch.float32
        # channels-last on the CPU in float32 (oneDNN); not yet measured on GPUs, so NCHW there
        self.ops = TorchOps(channels_last=context == "cpu" and self.dtype == torch.float32)

    def set_threads(self, threads):
        torch.set_num_threads(threads)

    def _start_engine(self, engine):
        import torch.distributed as dist

        launch = launch_of(engine, TORCHRUN)
        if launch is None:
            return SINGLE
        if not dist.is_available():
            raise BackendUnavailableError(f"this torch ({torch.__version__}) is built without torch.distributed")
        size, rank = launch[1], launch[2]
        if self.context == "cpu":
            group = "gloo"
        else:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            if local >= torch.cuda.device_count():
                raise BackendUnavailableError(f"rank {rank} is LOCAL_RANK {local}, but this machine has "
                                              f"{torch.cuda.device_count()} CUDA device(s)")
            self.device_id, self.device = local, torch.device("cuda", local)
            torch.cuda.set_device(self.device)
            group = "nccl"
        if not dist.is_initialized():
            dist.init_process_group(group, timeout=self.collective_timeout)
            self._owns_group = True
        return Replicas(size=size, engine="torchrun", process=rank, processes=size, first=rank)

    def shutdown(self, finished=True):
        if getattr(self, "_owns_group", False):
            import torch.distributed as dist

            self._owns_group = False
            if finished:
                dist.barrier()  # a rank that leaves early can abort the others' last collective
            dist.destroy_process_group()
            # What still holds the group in a reference cycle releases it now, so its
            # destructor joins gloo's threads while the interpreter is whole, not during
            # finalization (pytorch/pytorch#65513: threads destroyed unjoined abort the process).
            gc.collect()

    def versions(self):
        return {"torch": torch.__version__}

    def compile(self, program: Program) -> TorchSession:
        return TorchSession(self, program)

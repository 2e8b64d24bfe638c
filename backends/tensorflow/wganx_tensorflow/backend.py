"""The TensorFlow backend: ops on NHWC tensors with NCHW semantics, steps as ``tf.function``.

TensorFlow's CPU kernels only convolve NHWC, so every 4-D tensor inside this backend is an
NHWC image; the ops translate the NCHW axes and shapes of :mod:`wganx.ops` (``flatten``
transposes back to NCHW first, so affine weights keep their canonical layout). Weights live
as ``tf.Variable`` in TensorFlow's layouts (conv HWIO, transposed conv ``[h, w, out, in]``)
and cross the seam as canonical OIHW / IOHW numpy. Each step is one ``tf.function`` traced
once from the program's input shapes, optionally compiled by XLA, with the optimizer update
of :mod:`wganx.optim` written out inside it. Gradient penalties nest a ``tf.GradientTape``
in the step's tape.

Data-parallel (:mod:`wganx.distributed`) on ``tf.distribute``: ``MirroredStrategy`` (the
local GPUs, or ``WGANX_TF_CPU_DEVICES`` logical CPUs) and ``MultiWorkerMirroredStrategy``
(one process per worker, ``TF_CONFIG``). Each replica steps on its slice of the global
batch, all-reduces the gradients (a mean) and applies the same update to its own copy of
every variable, so the copies never need a merge (a variable updated in-replica with
differing values would silently diverge). XLA stays off there: compiled replica functions
that touch variables fail on logical CPU devices.
"""
from __future__ import annotations

import os
from typing import Optional

from wganx.algorithm import Program
from wganx.backend import Backend
from wganx.distributed import AUTO, SINGLE, Replicas, launched_by
from wganx.errors import BackendUnavailableError, WganxError
from wganx.notices import notice

from .ops import TensorFlowOps
from .plugin import CPU_DEVICES_ENV, MULTI_WORKER, TF_CONFIG_EXAMPLE, tf_config
from .replicas import strategy_for
from .runtime import tf
from .session import TensorFlowSession

# "1"/"0" forces XLA on/off; unset picks the default measured faster for the device.
XLA_ENV = "WGANX_TF_XLA"


class TensorFlowBackend(Backend):
    """TensorFlow 2 on the CPU or an NVIDIA GPU (``cuda`` and ``cudnn`` both mean the GPU;
    TensorFlow always convolves with cuDNN there).

    Args:
        jit_compile: compile the steps with XLA; None reads ``WGANX_TF_XLA`` ("1"/"0"),
            else off (XLA measured about 15-50% slower on a 2-core CPU for the NNabla example's
            model at batch 64; not yet measured on a GPU).
    """

    name = "tensorflow"
    #: how long a collective waits for the other workers before it fails
    collective_timeout_s = 600.0

    def __init__(self, context="cpu", device_id=0, type_config="float", *,
                 jit_compile: Optional[bool] = None):
        super().__init__(context, device_id, type_config)
        if context == "cpu":
            self.device = "/CPU:0"
        else:
            gpus = tf.config.list_physical_devices("GPU")
            if not gpus:
                raise BackendUnavailableError(
                    f"-c {context} needs a GPU, but this tensorflow ({tf.__version__}) sees none; "
                    "install a CUDA build (pip install 'tensorflow[and-cuda]') on a machine with "
                    "an NVIDIA GPU")
            if device_id >= len(gpus):
                raise BackendUnavailableError(f"-d {device_id}: only {len(gpus)} GPU(s) visible")
            self.device = f"/GPU:{device_id}"
        self.dtype = tf.float64 if type_config == "double" else tf.float32
        if jit_compile is None:
            env = os.environ.get(XLA_ENV, "").strip().lower()
            if env in ("1", "true", "yes", "on"):
                jit_compile = True
            elif env in ("0", "false", "no", "off"):
                jit_compile = False
            else:  # measured slower on the CPU (the NNabla example arch, batch 64); not measured on a GPU
                jit_compile = False
        self.jit_compile = bool(jit_compile)
        self.ops = TensorFlowOps()
        self.strategy = None  # a tf.distribute strategy once replicate() joined one

    def set_threads(self, threads):
        try:  # setting the count the runtime already has is a no-op, another one raises
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            notice(f"TensorFlow's runtime started earlier in this process; --threads {threads} "
                   "applies to a new process")

    def _start_engine(self, engine):
        launch = launched_by()
        if engine == AUTO:
            if launch is None or launch[0] != MULTI_WORKER.launcher:
                return SINGLE
            engine = MULTI_WORKER.name
        try:
            if engine == MULTI_WORKER.name:
                if not os.environ.get("TF_CONFIG"):
                    raise WganxError("--distribute multi-worker needs TF_CONFIG in each worker's environment, "
                                     f"e.g. {TF_CONFIG_EXAMPLE}")
                tf_config(os.environ)  # a one-line error for malformed JSON
                options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=self.collective_timeout_s)
                self.strategy = strategy_for(engine, lambda: tf.distribute.MultiWorkerMirroredStrategy(
                    communication_options=options))
                process, processes = (launch[2], launch[1]) if launch else (0, 1)
            else:
                self.strategy = strategy_for((engine, self.context),
                                          lambda: tf.distribute.MirroredStrategy(self._mirrored_devices()))
                process, processes = 0, 1
        except (RuntimeError, ValueError) as exc:
            raise WganxError(f"--distribute {engine}: TensorFlow could not start it: {str(exc).splitlines()[0]}") from None
        local = len(self.strategy.extended.worker_devices)
        self.device = self.strategy.extended.worker_devices[0]
        return Replicas(size=self.strategy.num_replicas_in_sync, engine=engine, process=process,
                        processes=processes, first=process * local, local=local)

    def _mirrored_devices(self):
        """The local GPUs; on the CPU, ``WGANX_TF_CPU_DEVICES`` logical CPU devices (default 1)."""
        if self.context != "cpu":
            return [d.name for d in tf.config.list_logical_devices("GPU")]
        try:
            n = int(os.environ.get(CPU_DEVICES_ENV, "1"))
        except ValueError:
            raise WganxError(f"{CPU_DEVICES_ENV} must be a number of CPU devices, "
                             f"got {os.environ[CPU_DEVICES_ENV]!r}") from None
        if n > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            try:
                tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
            except RuntimeError:
                raise WganxError(f"{CPU_DEVICES_ENV}={n} must be set before TensorFlow's runtime starts "
                                 "in this process") from None
        return [d.name for d in tf.config.list_logical_devices("CPU")]

    def versions(self):
        return {"tensorflow": tf.__version__}

    def compile(self, program: Program) -> TensorFlowSession:
        return TensorFlowSession(self, program)

"""Registers the TensorFlow backend and its tf.distribute engines; imports no framework."""
import json
import sys

from wganx import hookimpl
from wganx.errors import WganxError
from wganx.records import BackendSpec, EngineSpec

# N > 1 splits the CPU into N logical devices for --distribute mirrored on -c cpu (to try data
# parallelism on a machine without GPUs; TensorFlow has no switch of its own).
CPU_DEVICES_ENV = "WGANX_TF_CPU_DEVICES"
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def tf_config(environ) -> tuple:
    """``(cluster, task)`` of ``TF_CONFIG`` (TensorFlow's multi-worker description)."""
    try:
        spec = json.loads(environ["TF_CONFIG"])
        return dict(spec.get("cluster", {})), dict(spec.get("task", {}))
    except (ValueError, AttributeError, TypeError):
        raise WganxError(f"TF_CONFIG is not valid JSON of the form {TF_CONFIG_EXAMPLE}") from None


def tf_config_world(environ):
    """The workers (chief included) of ``TF_CONFIG``, and this one's index among them."""
    if not environ.get("TF_CONFIG"):
        return None
    cluster, task = tf_config(environ)
    workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    index = task.get("index", 0) + (len(cluster.get("chief", [])) if task.get("type") == "worker" else 0)
    return workers, index


def mirrored_command(n, context):
    """One process driving ``n`` devices: ``n`` logical CPUs, or the first ``n`` GPUs."""
    env = {CPU_DEVICES_ENV: str(n)} if context == "cpu" else {"CUDA_VISIBLE_DEVICES": ",".join(map(str, range(n)))}
    return [sys.executable], env


MIRRORED = EngineSpec("mirrored", command=mirrored_command)
MULTI_WORKER = EngineSpec("multi-worker", launcher="TF_CONFIG", detect=tf_config_world,
                          example="TF_CONFIG='{...}' wganx train --backend tensorflow --distribute multi-worker ...")


@hookimpl
def wganx_backends():
    return [BackendSpec(
        "tensorflow", factory="wganx_tensorflow.backend:TensorFlowBackend", requires=("tensorflow",),
        install_hint="pip install wganx-tensorflow (or: pip install tensorflow)",
        capabilities=frozenset({"cpu", "cuda", "cudnn", "half", "double"}),
        description="TensorFlow 2: tf.function steps (optionally XLA), NHWC inside, nested-tape penalties",
        engines=(MIRRORED, MULTI_WORKER))]

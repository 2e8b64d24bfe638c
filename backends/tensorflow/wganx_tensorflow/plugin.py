"""Registers the TensorFlow backend; imports no framework."""
from wganx import hookimpl
from wganx.records import BackendSpec


@hookimpl
def wganx_backends():
    return [BackendSpec(
        "tensorflow", factory="wganx_tensorflow.backend:TensorFlowBackend", requires=("tensorflow",),
        install_hint="pip install wganx-tensorflow (or: pip install tensorflow)",
        capabilities=frozenset({"cpu", "cuda", "cudnn", "half", "double"}),
        description="TensorFlow 2: tf.function steps (optionally XLA), NHWC inside, nested-tape penalties",
        engines=("mirrored", "multi-worker"))]

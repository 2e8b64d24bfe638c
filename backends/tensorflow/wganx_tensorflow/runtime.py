"""TensorFlow, imported once for the backend's modules, without its start-up noise.

``from .runtime import tf`` everywhere in this package: the environment is set and the
messages TensorFlow's native code prints on a machine without a GPU are held back before
its first import.
"""
import contextlib
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

from wganx.backend import prefer_python_protobuf  # noqa: E402

prefer_python_protobuf()  # before TensorFlow first imports protobuf

# What TensorFlow's native code prints on a machine without a GPU, whatever
# TF_CPP_MIN_LOG_LEVEL says (absl writes it before its log level is read): not errors.
START_UP_NOISE = re.compile(
    r"Unable to register cu(DNN|FFT|BLAS) factory|All log messages before absl::InitializeLog|"
    r"computation placer already registered|failed call to cuInit|Could not find cuda drivers|"
    r"oneDNN custom operations are on|cpu_feature_guard|To enable the following instructions")


@contextlib.contextmanager
def _quiet_start_up():
    """Hold back file descriptor 2 while TensorFlow starts, then pass on every line that
    is not known start-up noise; ``wganx -v`` (TF_CPP_MIN_LOG_LEVEL=0) shows everything."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [ln for ln in held.read().decode(errors="replace").splitlines() if not START_UP_NOISE.search(ln)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


with _quiet_start_up():
    import tensorflow as tf

    tf.config.list_physical_devices("GPU")  # CUDA's initialisation message comes here

__all__ = ["tf", "START_UP_NOISE"]

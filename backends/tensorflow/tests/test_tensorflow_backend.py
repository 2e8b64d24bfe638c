"""What only the TensorFlow backend does: its quiet start-up, its thread count, its
multi-worker launch (``TF_CONFIG``), and its nearest upsampling's derivatives of every order. (What every backend must do is in
``tests/``: the parity matrix, the ops contract, training, resume.)"""
import os
import subprocess
import sys

import json

import numpy as np
import pytest

from wganx.distributed import launched_by
from wganx.errors import WganxError

pytest.importorskip("wganx_tensorflow")
pytest.importorskip("tensorflow")


def test_tensorflow_start_up_noise_is_held_back(tmp_path):
    code = "import wganx; from wganx.build import load_backend; load_backend('tensorflow')"
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert quiet.returncode == 0 and "Unable to register" not in quiet.stderr and "cuInit" not in quiet.stderr
    assert "computation placer" not in quiet.stderr, quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code + "; import sys; print('real error', file=sys.stderr)"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0"))
    assert "real error" in loud.stderr


def test_tensorflow_nearest_upsampling_has_derivatives_of_every_order():
    """The backend's resize-based nearest upsampling against tile-and-reshape, up to the third
    derivative in float64 (TensorFlow has no gradient for the resize's own gradient op)."""
    import tensorflow as tf
    from wganx_tensorflow.ops import TensorFlowOps

    x = tf.constant(np.random.default_rng(0).standard_normal((2, 3, 3, 2)))
    weights = tf.reshape(tf.range(72, dtype=tf.float64) / 72.0, (1, 6, 6, 2))

    def tiled(v, k):
        return tf.reshape(tf.tile(tf.reshape(v, (-1, 3, 1, 3, 1, 2)), (1, 1, k, 1, k, 1)), (-1, 6, 6, 2))

    def derivatives(upsample):
        with tf.GradientTape() as t3:
            t3.watch(x)
            with tf.GradientTape() as t2:
                t2.watch(x)
                with tf.GradientTape() as t1:
                    t1.watch(x)
                    y = upsample(x, 2)
                    out = tf.reduce_sum(tf.sin(y) * weights)
                g1 = t1.gradient(out, x)
                s2 = tf.reduce_sum(g1 ** 3)
            g2 = t2.gradient(s2, x)
            s3 = tf.reduce_sum(tf.sin(g2))
        g3 = t3.gradient(s3, x)
        return [t.numpy() for t in (y, g1, g2, g3)]

    for got, want in zip(derivatives(TensorFlowOps._repeat), derivatives(tiled)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


TF_SCRIPT = """
import tensorflow as tf
from wganx.build import load_backend
load_backend("tensorflow", threads=1)
tf.constant(1.0) + 1.0  # the runtime starts with the count
print("intra", tf.config.threading.get_intra_op_parallelism_threads())
load_backend("tensorflow", threads=1)  # the count it has: nothing to say
load_backend("tensorflow", threads=2)  # too late for this process: told, not silently ignored
"""


def test_tensorflow_gets_the_count_before_its_runtime_starts():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", TF_SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "intra 1" in proc.stdout
    assert "TensorFlow's runtime started earlier in this process; --threads 2 applies to a new process" in proc.stderr
    assert proc.stderr.count("runtime started earlier") == 1  # not for the count it already had


def test_tf_config_workers_are_recognised_as_a_launch(monkeypatch):
    """The multi-worker engine's record recognises a TF_CONFIG cluster (chief counted first);
    the core asks it through :func:`wganx.distributed.launched_by`."""
    for name in ("WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert launched_by() == ("TF_CONFIG", 2, 1)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:0"], "worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert launched_by() == ("TF_CONFIG", 3, 2)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"index": 0}}))
    assert launched_by() is None  # one worker is no job
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(WganxError, match="TF_CONFIG is not valid JSON"):
        launched_by()

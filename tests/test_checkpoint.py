"""Checkpoints keep every array's shape, and the ones wganx 0.1.0 wrote still load and resume."""
from dataclasses import replace

import numpy as np
import pytest

from wganx import checkpoint
from wganx.config import TrainConfig
from wganx.errors import WganxError
from wganx.generate import generate
from wganx.session import LossScale, scalar
from wganx.training import train

META = {"iteration": 1, "config": {}, "sample_shape": [2], "data_kind": "points", "num_classes": 0}


def test_save_keeps_every_shape_zero_dimensional_included(tmp_path):
    arrays = {"counter": np.asarray(7.0), "bias": np.ones(1), "weight": np.arange(6.0).reshape(2, 3).T}
    loaded, _ = checkpoint.load(checkpoint.save(tmp_path / "params_000001.safetensors", arrays, META))
    assert {k: v.shape for k, v in loaded.items()} == {"counter": (), "bias": (1,), "weight": (3, 2)}
    for name, value in arrays.items():
        assert loaded[name].dtype == np.float32
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_counters_read_in_both_shapes_and_nothing_larger():
    assert scalar("t", np.float32(3)).shape == () and int(scalar("t", np.ones(1, np.float32) * 3)) == 3
    with pytest.raises(WganxError, match=r"optimizer/critic/t: expected a scalar, got shape \(2,\)"):
        scalar("optimizer/critic/t", np.ones(2))
    scale = LossScale()
    scale.load("loss_scale", np.asarray([1024.0], np.float32))
    scale.load("loss_scale_finite_steps", np.asarray([12.0], np.float32))
    assert (scale.scale, scale.finite_steps) == (1024.0, 12)


def write_the_old_way(path):
    """Rewrite ``path`` as wganx 0.1.0 wrote it: every 0-d array as shape ``(1,)``
    (``np.ascontiguousarray`` makes any array at least 1-d), the same metadata."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as f:
        metadata, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    scalars = [k for k, v in arrays.items() if v.ndim == 0]
    save_file({k: v.reshape(1) if v.ndim == 0 else v for k, v in arrays.items()}, str(path), metadata=metadata)
    return scalars


def test_a_checkpoint_written_the_old_way_generates_and_resumes_exactly(backend_name, tmp_path):
    """The step counters of a 0.1.0 checkpoint are shape (1,): numpy 2.4 refused them with a
    traceback. They load, generate, and a resume from them equals an uninterrupted run."""
    config = TrainConfig(backend=backend_name, dataset="8gaussians", arch="mlp", maps=8, latent=2, batch_size=8,
                         max_iter=4, save_interval=2, log_interval=1, num_samples=16, progress=False,
                         threads=1, monitor_path=str(tmp_path / "whole"))
    train(config)
    split = replace(config, max_iter=2, monitor_path=str(tmp_path / "split"))
    train(split)
    old = tmp_path / "split" / "params_000002.safetensors"
    assert {"optimizer/critic/t", "optimizer/generator/t"} <= set(write_the_old_way(old))
    arrays, _ = checkpoint.load(old)
    assert arrays["optimizer/critic/t"].shape == (1,)

    out = generate(old, tmp_path / "generated", num_images=5, batch_size=5)
    with np.load(out["written"]["npz"]) as f:
        assert f["points"].shape == (5, 2)
    train(replace(split, max_iter=4, resume="latest"))
    whole, _ = checkpoint.load(tmp_path / "whole" / "params_000004.safetensors")
    resumed, _ = checkpoint.load(tmp_path / "split" / "params_000004.safetensors")
    assert resumed["optimizer/critic/t"].shape == () and float(resumed["optimizer/critic/t"]) > 0
    assert set(resumed) == set(whole)
    for key in whole:
        np.testing.assert_allclose(resumed[key], whole[key], rtol=1e-5, atol=1e-7, err_msg=key)


def test_checkpoint_roundtrip_and_atomicity(tmp_path):
    arrays = {"generator/W": np.arange(6, dtype=np.float32).reshape(2, 3)}
    written = {"iteration": 1, "config": {}, "sample_shape": [2], "data_kind": "points", "num_classes": 0}
    path = checkpoint.save(tmp_path / "params_000001.safetensors", arrays, written)
    loaded, meta = checkpoint.load(path)
    np.testing.assert_array_equal(loaded["generator/W"], arrays["generator/W"])
    assert meta == dict(written, meaning=checkpoint.MEANING)

    def crash(tmp):
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_write(path, crash)
    assert checkpoint.load(path)[1]["iteration"] == 1  # the old one is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params_000001.safetensors"]
    assert checkpoint.latest(tmp_path) == path


def test_checkpoint_errors_are_clear(tmp_path):
    bad = tmp_path / "params_000002.safetensors"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(WganxError, match="not a readable checkpoint"):
        checkpoint.load(bad)
    with pytest.raises(WganxError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.safetensors")
    with pytest.raises(WganxError, match="another architecture"):
        checkpoint.check_compatible({}, {"critic/W": (2,)}, bad)

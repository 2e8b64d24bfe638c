"""wganx.generate: ``wganx generate``'s files are :meth:`wganx.GAN.sample` of the checkpoint,
written whole, never over a user's earlier outputs unless told; ``session_generator`` draws
the same latents at any batch size. (The command's one-line errors: test_safety.py.)"""
import numpy as np
import pytest
from PIL import Image

import wganx
from wganx.errors import WganxError
from wganx.gan import load_session
from wganx.generate import OUTPUTS, generate, session_generator

from conftest import available_backends

pytestmark = pytest.mark.skipif(not available_backends(), reason="no backend installed")


def test_the_files_hold_the_gans_samples(toy_checkpoint, tmp_path):
    out = generate(toy_checkpoint, tmp_path / "gen", num_images=20, batch_size=8, seed=4, threads=1)
    assert out["iteration"] == 2 and sorted(out["written"]) == ["npz", "png"]
    with np.load(tmp_path / "gen" / OUTPUTS["npz"]) as saved:
        assert sorted(saved.files) == ["points"]  # an unconditional model has no labels
        np.testing.assert_array_equal(saved["points"], out["samples"])
    expected = wganx.load(toy_checkpoint, threads=1).sample(20, seed=4)
    np.testing.assert_allclose(out["samples"], expected, rtol=1e-6, atol=1e-6)
    with Image.open(tmp_path / "gen" / OUTPUTS["png"]) as png:
        assert png.format == "PNG"
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == sorted(OUTPUTS.values())  # nothing else


def test_earlier_outputs_stop_it_before_any_work_unless_overwritten(toy_checkpoint, tmp_path):
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / OUTPUTS["npz"]).write_bytes(b"the user's")
    with pytest.raises(WganxError, match=r"already holds samples.npz: replace with --overwrite"):
        generate(tmp_path / "no-such-checkpoint.safetensors", tmp_path / "gen", fmt=("npz",))
    generate(toy_checkpoint, tmp_path / "gen", fmt=("png",), threads=1)  # another format: nothing in the way
    assert (tmp_path / "gen" / OUTPUTS["npz"]).read_bytes() == b"the user's"
    generate(toy_checkpoint, tmp_path / "gen", fmt=("npz",), overwrite=True, threads=1)
    assert (tmp_path / "gen" / OUTPUTS["npz"]).read_bytes()[:2] == b"PK"


@pytest.mark.parametrize("option", ["batch_size", "num_images"])
def test_counts_must_be_positive(tmp_path, option):
    with pytest.raises(WganxError, match="--batch-size and --num-images must be at least 1"):
        generate(tmp_path / "x.safetensors", tmp_path / "gen", **{option: 0})


def test_session_generator_draws_the_same_latents_at_any_batch_size(toy_checkpoint):
    session, program, _ = load_session(toy_checkpoint, threads=1)
    small = session_generator(session, program, seed=9, batch_size=3)(10)
    whole = session_generator(session, program, seed=9, batch_size=256)(10)
    assert small.shape == (10, 2) and small.dtype == np.float32
    np.testing.assert_allclose(small, whole, rtol=1e-6, atol=1e-6)
    fresh = session_generator(session, program, seed=9)
    assert not np.allclose(fresh(4), fresh(4))  # one stream: each call draws new latents


def test_a_negative_seed_is_one_line_from_the_command_and_from_python(toy_checkpoint, tmp_path):
    with pytest.raises(WganxError, match="^--seed must not be negative, got -1$"):
        generate(toy_checkpoint, tmp_path / "gen", seed=-1)
    with pytest.raises(WganxError, match="^seed must not be negative, got -3$"):
        wganx.load(toy_checkpoint, threads=1).sample(4, seed=-3)
    assert not (tmp_path / "gen").exists()

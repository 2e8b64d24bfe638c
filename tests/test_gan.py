"""wganx.gan: a trained GAN loaded from a checkpoint samples and judges, and refuses what it
cannot do in one line. Training through the API and sampling on every backend is in
test_api.py."""
import numpy as np
import pytest

import wganx
from wganx.errors import WganxError

from conftest import available_backends

pytestmark = pytest.mark.skipif(not available_backends(), reason="no backend installed")


def test_a_gan_says_what_it_is(toy_checkpoint):
    gan = wganx.load(toy_checkpoint, threads=1)
    assert (gan.iteration, gan.data_kind, gan.sample_shape, gan.latent, gan.num_classes) == (2, "points", (2,), 2, 0)
    assert gan.dataset == "8gaussians" and gan.moving_average  # the mlp recommends --ema-decay 0.99
    assert repr(gan) == f"GAN({toy_checkpoint}, iteration 2, points 2, latent 2, on {gan.backend})"


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "8"])
def test_a_sample_count_must_be_a_positive_integer(toy_checkpoint, n):
    with pytest.raises(WganxError, match=f"n must be a positive integer, got {n!r}"):
        wganx.load(toy_checkpoint, threads=1).sample(n)


def test_samples_come_in_batches_of_the_loaded_size(toy_checkpoint):
    """The same latents give the same samples at any batch size the networks run at."""
    one = wganx.load(toy_checkpoint, threads=1).sample(37, seed=5)
    small = wganx.load(toy_checkpoint, threads=1, batch_size=4).sample(37, seed=5)
    np.testing.assert_allclose(small, one, rtol=1e-6, atol=1e-6)


def test_what_cannot_be_loaded_is_one_line(tmp_path, toy_checkpoint):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WganxError, match="holds no checkpoint"):
        wganx.load(tmp_path / "empty")
    with pytest.raises(WganxError, match="context must be one of cpu, cuda, cudnn, got 'gpu'"):
        wganx.load(toy_checkpoint, context="gpu")


def test_image_samples_layout_tiles_and_class_labels(tmp_path):
    result = wganx.train(dataset="digits", image_size=16, arch="dcgan", maps=2, latent=8, batch_size=8, max_iter=2,
                         save_interval=2, conditional=True, threads=1, progress=False, monitor_path=tmp_path / "run")
    gan = wganx.load(result.checkpoint, threads=1)
    assert (gan.data_kind, gan.sample_shape, gan.num_classes) == ("image", (1, 16, 16), 10)
    x, labels = gan.sample(12, seed=0, return_labels=True)
    assert x.shape == (12, 1, 16, 16) and x.dtype == np.float32 and -1 <= x.min() and x.max() <= 1
    assert labels.shape == (12,) and 0 <= labels.min() and labels.max() < 10
    assert np.array_equal(gan.sample(12, seed=0, labels=labels), x)  # the labels it drew
    sevens = gan.sample(4, seed=0, labels=7)
    assert not np.array_equal(sevens, x[:4])
    uint8_nhwc = np.round((x.transpose(0, 2, 3, 1) + 1) * 127.5).astype(np.uint8)
    as_float = uint8_nhwc.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1  # the layout it reads them in
    np.testing.assert_allclose(gan.critic(uint8_nhwc, labels), gan.critic(as_float, labels), rtol=1e-5, atol=1e-6)
    with pytest.raises(wganx.WganxError, match="class-conditional: pass labels"):
        gan.critic(x)
    with pytest.raises(wganx.WganxError, match="from 0 to 9"):
        gan.sample(3, labels=[1, 2, 10])
    tile = gan.show(16)
    assert tile.size[0] >= 256 and tile.mode == "L"  # 4 x 4 digits, scaled up to be seen

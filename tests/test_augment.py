"""Differentiable augmentation (``--augment``): each transform against a numpy reference of
its paper's code, differentiated twice in float64 through the penalty on every backend,
ADA's adaptive ``p``, a resumed augmented run against an uninterrupted one, a third party's
augmentation, and every bad input as a one-line error before heavy work. The cross-backend
cases are in the parity matrix (``tests/test_parity.py``, ``augment ...``)."""
from dataclasses import replace

import numpy as np
import pytest

import wganx
from wganx import cli, monitor, parity
from wganx.augment import AdaptiveP, Augment, check_options, parse
from wganx.build import initial_arrays, load_backend, make_program
from wganx.errors import WganxError
from wganx.records import ArchConfig, AugmentSpec
from wganx.training import Trainer
from wganx_plugins import augmentations as aug

from conftest import available_backends, check_critic_gradient, read_losses, resume_against_whole, tiny_config
from test_ops import NumpyOps as ContractOps

BACKENDS = available_backends()
DOUBLE_BACKENDS = [b for b in BACKENDS if "double" in wganx.registry().get("backend", b).capabilities]


class NumpyOps(ContractOps):
    """test_ops.py's numpy reference of the ops contract, with the reduction colour uses."""

    def mean(self, x, axes=None, keepdims=False):
        return x.mean(axis=axes, keepdims=keepdims)


def _images(n=6, c=3, size=8, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, c, size, size))


# -- each transform against its reference ---------------------------------------------------------
def test_diffaug_translation_and_cutout_are_the_reference_codes():
    """``rand_translation`` and ``rand_cutout`` of DiffAugment_pytorch.py, ported index for index."""
    x = _images(size=8)
    n, _, h, w = x.shape
    params = aug.diffaug_sample(np.random.default_rng(1), n, x.shape[1:], ("translation",), 0.0)
    rng, radius = np.random.default_rng(1), int(h * 0.125 + 0.5)
    tx, ty = rng.integers(-radius, radius + 1, n), rng.integers(-radius, radius + 1, n)  # the reference's draws
    assert len(set(tx) | set(ty)) > 1
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    gx = np.clip(np.arange(h)[None, :, None] + tx[:, None, None] + 1, 0, h + 1)
    gy = np.clip(np.arange(w)[None, None, :] + ty[:, None, None] + 1, 0, w + 1)
    expected = padded.transpose(0, 2, 3, 1)[np.arange(n)[:, None, None], gx, gy].transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(aug.diffaug_apply(NumpyOps(), x, params, ("translation",)), expected)

    mask = aug.diffaug_sample(np.random.default_rng(2), n, x.shape[1:], ("cutout",), 0.0)["aug_cutout"]
    rng, size = np.random.default_rng(2), int(h * 0.5 + 0.5)
    ox, oy = rng.integers(0, h + (1 - size % 2), n), rng.integers(0, w + (1 - size % 2), n)
    reference = np.ones((n, h, w))
    for i in range(n):
        for a in range(size):
            for b in range(size):
                reference[i, np.clip(a + ox[i] - size // 2, 0, h - 1), np.clip(b + oy[i] - size // 2, 0, w - 1)] = 0
    np.testing.assert_array_equal(mask[:, 0], reference)


def test_diffaug_color_is_the_reference_code():
    x = _images()
    params = aug.diffaug_sample(np.random.default_rng(3), len(x), x.shape[1:], ("color",), 0.0)
    params = {k: v.astype(np.float64) for k, v in params.items()}
    b, s, c = (params[k] for k in ("aug_brightness", "aug_saturation", "aug_contrast"))
    y = x + (b - 0.5)
    y = (y - y.mean(1, keepdims=True)) * (s * 2) + y.mean(1, keepdims=True)
    y = (y - y.mean((1, 2, 3), keepdims=True)) * (c + 0.5) + y.mean((1, 2, 3), keepdims=True)
    np.testing.assert_allclose(aug.diffaug_apply(NumpyOps(), x, params, ("color",)), y, rtol=1e-12)


def test_ada_blit_transforms_are_flips_quarter_turns_and_mirrored_shifts():
    """Against numpy's flip, rot90 and reflect padding, with ADA's draws in ADA's order (each
    value, then its gate) from a twin generator."""
    x = _images(n=16)
    ops, n = NumpyOps(), len(x)
    p = 0.7
    params = aug.ada_sample(np.random.default_rng(4), n, x.shape[1:], aug.ADA_BLIT, p)
    rng = np.random.default_rng(4)
    flip = np.floor(rng.uniform(0, 1, n) * 2) * (rng.uniform(0, 1, n) < p)
    turns = np.floor(rng.uniform(0, 1, n) * 4).astype(int) * (rng.uniform(0, 1, n) < p)
    t = rng.uniform(-1, 1, (n, 2)) * 0.125
    on = rng.uniform(0, 1, n) < p
    tx, ty = (np.rint(t[:, 0] * 8) * on).astype(int), (np.rint(t[:, 1] * 8) * on).astype(int)
    assert set(flip) == {0.0, 1.0} and set(turns) == {0, 1, 2, 3} and set(tx) == {-1, 0, 1}
    r = 1
    expected = []
    for i in range(n):
        img = np.flip(x[i], 2) if flip[i] else x[i]
        img = np.rot90(img, turns[i], axes=(1, 2))
        img = np.pad(img, ((0, 0), (r, r), (r, r)), mode="reflect")
        expected.append(img[:, r + ty[i]:r + ty[i] + 8, r + tx[i]:r + tx[i] + 8])
    np.testing.assert_allclose(aug.ada_apply(ops, x, params, aug.ADA_BLIT), np.stack(expected), atol=1e-12)
    off = aug.ada_sample(np.random.default_rng(4), n, x.shape[1:], aug.ADA_TRANSFORMS, 0.0)  # p = 0: identity
    np.testing.assert_allclose(aug.ada_apply(ops, x, off, aug.ADA_TRANSFORMS), x, atol=1e-6)


@pytest.mark.parametrize("name, luma", [("brightness", None), ("contrast", None), ("lumaflip", -1.0), ("hue", 1.0),
                                        ("saturation", 1.0)])
def test_ada_colour_transforms_act_on_the_luma_axis_as_adas(name, luma):
    """Hue and saturation keep the luma (the channels' mean) of every pixel, lumaflip negates
    it (in half the samples: ADA flips with probability 1/2); brightness adds one value per
    sample, contrast multiplies by one."""
    x = _images(n=8)
    params = aug.ada_sample(np.random.default_rng(5), len(x), x.shape[1:], (name,), 1.0)
    y = aug.ada_apply(NumpyOps(), x, params, (name,))
    if luma is not None:
        sign = np.sign((y.mean(1) * x.mean(1)).sum((1, 2)))[:, None, None]
        np.testing.assert_allclose(y.mean(1), sign * x.mean(1), atol=1e-6)
        assert set(sign.ravel()) == ({-1.0, 1.0} if luma < 0 else {1.0})
        assert np.abs(y - x).max() > 0.01
    else:
        delta = (y - x) if name == "brightness" else y / x
        assert np.allclose(delta, delta[:, :1, :1, :1], atol=1e-5) and delta.std() > 0.01
    gray = _images(n=8, c=1)  # ADA's grayscale rule: a scale and an offset per sample
    g = aug.ada_sample(np.random.default_rng(5), len(gray), gray.shape[1:], (name,), 1.0)
    assert g["aug_colour"].shape == (8, 1, 1, 1) and g["aug_colour_bias"].shape == (8, 1, 1, 1)


def test_the_draws_are_per_sample_seeded_and_independent_of_p():
    """Same seed, same parameters; p only gates them (ADA draws every value, then its gate)."""
    a = aug.ada_sample(np.random.default_rng(0), 8, (3, 8, 8), aug.ADA_TRANSFORMS, 0.3)
    b = aug.ada_sample(np.random.default_rng(0), 8, (3, 8, 8), aug.ADA_TRANSFORMS, 0.3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    aug.ada_sample(rng_a, 8, (3, 8, 8), aug.ADA_TRANSFORMS, 0.0)
    aug.ada_sample(rng_b, 8, (3, 8, 8), aug.ADA_TRANSFORMS, 1.0)
    assert rng_a.random() == rng_b.random()


# -- second order, float64, every backend ----------------------------------------------------------
def _ops_program(augment, p=1.0):
    reg = wganx.registry()
    return replace(parity.ops_program(reg), augment=parse(augment, reg, p))


def _state(program, seed):
    """Initial weights with biases moved off 0: cutout and zero padding make all-zero patches,
    where a zero bias would put leaky ReLU exactly on its kink and the central difference
    would straddle it."""
    state = initial_arrays(program, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 100)
    for key in ("critic/c1/b", "critic/c2/b"):
        state[key] = rng.uniform(0.05, 0.2, state[key].shape).astype(np.float32)
    return state


SECOND_ORDER = ["diffaug:color", "diffaug:translation", "diffaug:cutout", "ada:xflip", "ada:rotate90", "ada:xint",
                "ada:color", "ada:cutout"]


# the eager float64 backend where there is one: each transform compiles a program of its own
FIRST_DOUBLE = (["torch"] if "torch" in DOUBLE_BACKENDS else DOUBLE_BACKENDS)[:1]


@pytest.mark.parametrize("augment", SECOND_ORDER)
@pytest.mark.parametrize("name", FIRST_DOUBLE)
def test_each_transform_is_differentiable_twice_in_float64(name, augment):
    """d(critic loss with gp through the augmentation)/dw against central differences: the
    penalty differentiates through the transform, so its gradient is the transform's second
    order. Each transform alone on the first float64 backend; all at once on every one below."""
    program = _ops_program(augment)
    session = load_backend(name, type_config="double").compile(program)
    real = np.random.default_rng(6).uniform(-1, 1, (parity.BATCH,) + parity.OPS_SAMPLE).astype(np.float32)
    points = [("critic/c1/W", 0), ("critic/c1/W", 150), ("critic/c2/W", 40)]
    check_critic_gradient(session, program, _state(program, 5), real, points, min_penalty=1e-3)


@pytest.mark.parametrize("augment", ["diffaug", "ada:blit,color,cutout"])
@pytest.mark.parametrize("name", DOUBLE_BACKENDS)
def test_whole_pipelines_are_differentiable_twice_on_every_backend(name, augment):
    program = _ops_program(augment)
    session = load_backend(name, type_config="double").compile(program)
    real = np.random.default_rng(7).uniform(-1, 1, (parity.BATCH,) + parity.OPS_SAMPLE).astype(np.float32)
    check_critic_gradient(session, program, _state(program, 8), real, [("critic/c1/W", 7), ("critic/c2/b", 1)],
                          min_penalty=1e-3)


# -- ADA's p -------------------------------------------------------------------------------------
def test_adaptive_p_follows_the_signal_by_adas_rule():
    ada = AdaptiveP(0.0, target=0.6, kimg=1.0, interval=2)  # 100 images per interval: 0.1
    for signal in (0.9, 0.9, 0.9, 0.1):  # above the target, then a mean of 0.5: below
        ada.observe(signal, 50)
    assert ada.p == pytest.approx(0.0)
    for signal in (1.0,) * 6:
        ada.observe(signal, 50)
    assert ada.p == pytest.approx(0.3) and ada.state()["signal_count"] == 0
    ada.observe(1.0, 500)  # the wgan schedule's 100 critic steps count as what they are
    again = AdaptiveP(0.0, 0.6, 1.0, 2)
    again.load(ada.state())
    assert again.state() == ada.state() == {"p": pytest.approx(0.3), "signal_sum": 1.0, "signal_count": 1,
                                            "images": 500}
    ada.observe(1.0, 50)
    assert ada.p == pytest.approx(0.85)
    for _ in range(40):
        ada.observe(1.0, 50)
    assert ada.p == 1.0  # clipped
    fixed = AdaptiveP(0.25, 0.6, 0.0, 1)  # --ada-kimg 0: p stays
    fixed.observe(1.0, 50)
    assert fixed.p == 0.25


def test_signals_are_read_once_an_interval_and_p_moves_when_read_at_once_would():
    """The training loop hands ADA device scalars; they are read (one fetch) only when they
    can move p, and p moves at the iteration it would if each were read at once."""
    reads = []

    def read(values):
        reads.append(len(values))
        return [float(v) for v in values]
    ada = AdaptiveP(0.0, target=0.6, kimg=1.0, interval=4, read=read)  # 200 images an interval: 0.2
    seen = []
    for signal in (1, 1, 1, 1, 0, 0, 0, 0, 1, 1):
        ada.observe(signal, 50)
        seen.append(ada.p)
    assert seen == pytest.approx([0, 0, 0, 0.2, 0.2, 0.2, 0.2, 0, 0, 0]) and reads == [4, 4]
    assert ada.state() == {"p": 0.0, "signal_sum": 2.0, "signal_count": 2, "images": 100} and reads == [4, 4, 2]
    skipped = AdaptiveP(0.0, 0.6, 1.0, 4, read=read)
    for signal in (1, float("nan"), 1, 1):  # a non-finite signal does not count
        skipped.observe(signal, 50)
    assert skipped.p == 0.0 and skipped.state()["signal_count"] == 3
    skipped.observe(1, 50)
    assert skipped.p == pytest.approx(0.2)


def test_the_signal_is_the_share_above_the_generated_mean():
    """r_t = mean sign(D(real) - mean D(fake)): shift-invariant, in [-1, 1]."""
    from wganx.algorithm import overfitting_signal

    class Ops(NumpyOps):
        def stop_gradient(self, x):
            return x

        def abs(self, x):
            return np.abs(x)

        def maximum(self, x, v):
            return np.maximum(x, v)

    real, fake = np.array([[3.0], [2.0], [0.5], [4.0]]), np.array([[1.0], [0.0], [2.0], [1.0]])
    assert overfitting_signal(Ops(), real, fake) == 0.5  # three of four above the mean 1.0
    assert overfitting_signal(Ops(), real + 100.0, fake + 100.0) == 0.5


# -- training: resume, logging, CLI -----------------------------------------------------------------
ADA = dict(augment="ada:blit,color,cutout", augment_p=0.2, ada_target=0.3, ada_kimg=0.4, ada_interval=1, n_critic=2)


def test_an_augmented_run_resumed_equals_an_uninterrupted_one(backend_name, tmp_path):
    """ADA's p moves every iteration here (kimg 0.4: 0.04 per interval of 8 x 2 images); the
    resumed run continues with the checkpoint's p and draws, and equals the whole run."""
    (a, meta_a), (b, meta_b) = resume_against_whole(tmp_path, 4, backend=backend_name, **ADA)
    ps = [float(r["augment_p"]) for r in a]
    assert ps[0] == 0.2 and len(set(ps)) > 2 and all(abs(x - y) == pytest.approx(0.04) for x, y in zip(ps, ps[1:]))
    assert [(r["augment_p"], r["augment_signal"]) for r in a] == [(r["augment_p"], r["augment_signal"]) for r in b]
    assert meta_a["ada"] == meta_b["ada"] and meta_a["ada"]["p"] != 0.2


def test_a_run_saved_in_mid_interval_resumes_exactly(tmp_path):
    """Intervals of 2 over 6 iterations, saved after 3: the checkpoint holds a half interval
    (its signal read from the device for the save), and the resumed run completes it as the
    whole run does."""
    (a, meta_a), (b, meta_b) = resume_against_whole(tmp_path, 6, backend=available_backends()[0],
                                                    **dict(ADA, ada_interval=2))
    ps = [float(r["augment_p"]) for r in a]
    assert ps[:3] == [0.2, 0.2, ps[2]] and ps[2] != 0.2  # p moves after iterations 2 and 4
    assert [(r["augment_p"], r["augment_signal"]) for r in a] == [(r["augment_p"], r["augment_signal"]) for r in b]
    assert meta_a["ada"] == meta_b["ada"]


def test_the_cli_trains_with_diffaugment_and_logs_p(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "--dataset", "digits", "--image-size", "16", "--arch", "dcgan", "--maps", "2",
                     "--latent", "8", "-b", "8", "-i", "2", "--save-interval", "2", "--log-interval", "1",
                     "--no-progress", "--threads", "1", "--augment", "diffaug:color,translation,cutout",
                     "--monitor-path", str(run)])
    assert code == 0, capsys.readouterr().err[-3000:]
    rows = read_losses(run)
    assert [float(r["augment_p"]) for r in rows] == [0.0, 0.0] and "augment_signal" in rows[0]
    assert len(monitor.loss_figure(monitor.read_loss_rows(run / "losses.csv")[0]).axes) == 3  # p has a panel
    result = wganx.train(dataset="digits", image_size=16, arch="dcgan", maps=2, latent=8, batch_size=8, max_iter=1,
                         threads=1, progress=False, augment="ada", augment_p=0.5, ada_kimg=0.0,
                         monitor_path=str(tmp_path / "api"))
    assert list(result.losses["augment_p"]) == [0.5]  # and the Python API returns p


# -- a third party's augmentation ------------------------------------------------------------------
class VerticalFlip:
    """A plugin of its own: flip each image upside down with probability p."""

    @wganx.hookimpl
    def wganx_augmentations(self):
        def sample(rng, batch_size, sample_shape, options, p):
            return {"aug_vflip": (rng.uniform(0, 1, (batch_size, 1, 1, 1)) < p).astype(np.float32)}

        def apply(ops, x, params, options):
            return x + (ops.flip(x, 2) - x) * params["aug_vflip"]

        return [AugmentSpec("vflip-test", sample, apply, description="upside down with probability p")]


@pytest.mark.skipif(len(BACKENDS) < 2, reason="parity needs two backends")
def test_a_third_party_augmentation_runs_and_agrees_on_every_backend():
    reg = wganx.plugins.Registry.from_plugins([VerticalFlip()])
    case = parity.Case("dcgan", augment="vflip-test")
    program = make_program(arch="dcgan", arch_config=ArchConfig(image_size=16, channels=1, latent=8, maps=2),
                           batch_size=parity.BATCH, augment="vflip-test", augment_p=0.5, reg=reg)
    checks = parity.check_case(case, {n: load_backend(n, threads=1) for n in BACKENDS}, reg, program)
    failed = [c.as_dict() for c in checks if not c.passed]
    assert checks and not failed, failed


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings, message", [
    ({"augment": "diffaug:color,zoom"},
     "--augment diffaug: unknown option 'zoom'; choose from: color, translation, cutout"),
    ({"augment": "ada:xflip,scale"}, "--augment ada: unknown option 'scale'; choose from: xflip, rotate90, xint, "
                                     "brightness, contrast, lumaflip, hue, saturation, cutout, blit, color"),
    ({"augment": "mixup"}, "unknown augmentation 'mixup'; choose one of: ada, diffaug"),
    ({"augment": "ada", "ada_target": 1.5}, "--ada-target must be in (0, 1), got 1.5"),
    ({"augment": "ada", "ada_target": 0.0}, "--ada-target must be in (0, 1), got 0.0"),
    ({"augment": "ada", "augment_p": -0.1}, "--augment-p must be in [0, 1], got -0.1"),
    ({"augment": "ada", "ada_kimg": -1.0}, "--ada-kimg must not be negative, got -1.0"),
    ({"augment": "ada", "ada_interval": 0}, "--ada-interval must be at least 1, got 0"),
    ({"augment": "diffaug", "dataset": "8gaussians", "arch": "mlp"},
     "--augment diffaug: augmentations transform images, and this data is points; use --augment none"),
])
def test_bad_input_is_one_line_before_any_folder(settings, message, tmp_path):
    with pytest.raises(WganxError) as err:
        Trainer(tiny_config(tmp_path, **settings))
    assert str(err.value) == message and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_the_cli_names_a_bad_augmentation_in_one_line(tmp_path, capsys):
    code = cli.main(["train", "--dataset", "digits", "--augment", "diffaug:colour", "--monitor-path",
                     str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().endswith(
        "--augment diffaug: unknown option 'colour'; choose from: color, translation, cutout")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_options_and_programs_refuse_what_they_cannot_mean():
    reg = wganx.registry()
    ada = reg.get("augmentation", "ada")
    assert check_options(ada, "blit,xflip,cutout") == ("xflip", "rotate90", "xint", "cutout")
    assert check_options(ada, None) == aug.ADA_BLIT + aug.ADA_COLOR
    assert parse("wganx:diffaug:", reg).options == parse("diffaug", reg).options == aug.DIFFAUG_POLICIES
    assert parse("wganx:diffaug:cutout", reg).label == "diffaug:cutout" and parse("none", reg) is None
    with pytest.raises(WganxError, match="takes no options"):
        check_options(AugmentSpec("plain", dict, lambda ops, x, p, o: x), "a")
    points = replace(parity.program_around(parity.linear_architecture(), 6, reg), augment=parse("diffaug", reg))
    with pytest.raises(WganxError, match=r"augments images \(C, H, W\); these samples have shape \(6,\)"):
        points.input_shapes("critic")  # what a backend asks before it compiles the program
    with pytest.raises(WganxError, match="each parameter needs an aug_ name"):
        Augment(AugmentSpec("bad", lambda *a: {"eps": np.zeros((2, 1))}, None), ()).sample(
            np.random.default_rng(0), 2, (1, 4, 4))
    with pytest.raises(WganxError, match="rotate90 needs square images"):
        aug.ada_sample(np.random.default_rng(0), 2, (1, 4, 6), ("rotate90",), 1.0)

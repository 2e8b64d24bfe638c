"""End to end: ``wganx train`` then ``wganx generate`` on every backend, resume, interrupts,
divergence and bad input."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import wganx
from wganx import checkpoint, monitor
from wganx.data import SamplerDataset
from wganx.plugins import Registry
from wganx.records import DatasetSpec
from wganx.training import TrainingDiverged, Trainer, train

from conftest import available_backends, read_losses, resume_against_whole, run_cli, tiny_config
from test_monitor import gif_frames

TINY = ["--dataset", "digits", "--image-size", "16", "--arch", "dcgan", "--maps", "2", "--latent", "8",
        "-b", "8", "--log-interval", "1", "--no-progress"]


def test_train_then_generate_on_another_backend(backend_name, tmp_path):
    run = tmp_path / "run"
    out = run_cli("train", "--backend", backend_name, *TINY, "-i", "4", "--save-interval", "2",
                  "--monitor-path", run, "--num-samples", "16")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "finished at iteration 4" in out.stdout
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "losses.csv", "losses.png", "progress.gif", "params_000002.safetensors",
            "params_000004.safetensors", "samples"} <= names
    assert {"train_000002.png", "fixed_000002.png", "train_000004.png", "fixed_000004.png"} <= \
        {p.name for p in (run / "samples").iterdir()}
    config = json.loads((run / "config.json").read_text())
    assert config["backend"] == backend_name and config["seed"] == 0 and config["config"]["batch_size"] == 8
    assert backend_name in config["frameworks"] or config["frameworks"]
    rows = read_losses(run)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert set(rows[0]) >= {"iteration", "critic_loss", "generator_loss", "penalty", "negative_critic_loss",
                            "elapsed_s"}
    assert all(np.isfinite(float(r["critic_loss"])) for r in rows)

    ckpt = run / "params_000004.safetensors"
    images = {}
    for other in available_backends():
        dest = tmp_path / f"gen-{other}"
        out = run_cli("generate", "--model-load-path", ckpt, "--backend", other, "-b", "4", "--num-images", "10",
                      "--monitor-path", dest)
        assert out.returncode == 0, out.stderr[-3000:]
        with np.load(dest / "samples.npz") as f:
            images[other] = f["images"]
        assert images[other].shape == (10, 1, 16, 16) and images[other].dtype == np.float32
        assert images[other].min() >= -1 and images[other].max() <= 1
        assert (dest / "generated.png").exists()
    for other, x in images.items():  # a checkpoint of one backend generates the same on every other
        np.testing.assert_allclose(x, images[backend_name], atol=1e-4)


@pytest.mark.parametrize("ema", [{}, {"ema_decay": 0.9, "ema_start": 2}, {"lr_decay": "linear", "lr_decay_iters": 6}],
                         ids=["", "ema", "lr-decay"])
def test_resume_equals_an_uninterrupted_run(backend_name, tmp_path, ema):
    """The losses and the state after a resume equal an uninterrupted run's: with a moving
    average, and with a learning-rate decay over a length given up front."""
    resume_against_whole(tmp_path, 6, backend=backend_name, **ema)
    state, _ = checkpoint.load(tmp_path / "a" / "run" / "params_000006.safetensors")
    assert any(key.startswith("ema/") for key in state) == ("ema_decay" in ema)


def test_keep_checkpoints_and_progress_gif_order_by_iteration_past_a_million(tmp_path):
    """Names sort params_1000000 before params_999999: pruning by name deleted the newest
    checkpoint at every save, and the GIF showed iteration 999,999 last."""
    run = tmp_path / "run"
    train(tiny_config(tmp_path, max_iter=2, save_interval=2))
    arrays, meta = checkpoint.load(run / "params_000002.safetensors")  # the same weights, at 999,998
    checkpoint.save(run / checkpoint.name_for(999998), arrays, dict(meta, iteration=999998))
    (run / "params_000002.safetensors").unlink()
    result = train(tiny_config(tmp_path, max_iter=1000001, save_interval=1, keep_checkpoints=1, resume="latest"))
    assert result["status"] == "finished" and result["iteration"] == 1000001
    assert [p.name for p in run.glob("params_*.safetensors")] == ["params_1000001.safetensors"]
    assert result["checkpoint"] == str(run / "params_1000001.safetensors")
    assert checkpoint.load(result["checkpoint"])[1]["iteration"] == 1000001

    tiles = monitor.sample_tiles(run / "samples")
    assert [p.name for p in tiles] == ["fixed_000002.png", "fixed_999999.png", "fixed_1000000.png",
                                       "fixed_1000001.png"]
    # one frame a tile; their order is the next test's (these tiles are too alike to tell apart
    # once a GIF's palette has rounded them)
    assert len(gif_frames(run / "progress.gif")) == len(tiles)


def test_toy_points_train_and_generate(tmp_path):
    run = tmp_path / "toy"
    out = run_cli("train", "--dataset", "8gaussians", "--arch", "mlp", "--maps", "32", "--latent", "2", "-b", "32",
                  "-i", "3", "--save-interval", "3", "--no-progress", "--monitor-path", run)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run / "samples" / "fixed_000003.png").exists()
    out = run_cli("generate", "--model-load-path", run / "params_000003.safetensors", "--num-images", "7",
                  "--monitor-path", tmp_path / "gen")
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "gen" / "samples.npz") as f:
        assert f["points"].shape == (7, 2)


def test_conditional_training_feeds_labels(tmp_path):
    result = train(tiny_config(tmp_path, arch="mlp", conditional=True, max_iter=2, save_interval=2))
    assert result["status"] == "finished"
    arrays, meta = checkpoint.load(tmp_path / "run" / "params_000002.safetensors")
    assert arrays["generator/label/W"].shape == (10, 32) and "critic/projection/W" in arrays
    from wganx.generate import generate

    out = generate(tmp_path / "run" / "params_000002.safetensors", tmp_path / "gen", num_images=5, batch_size=5)
    with np.load(out["written"]["npz"]) as f:
        assert f["labels"].shape == (5,)


def test_original_wgan_recipe_clips_the_critic(tmp_path):
    out = run_cli("train", *TINY, "--recipe", "wgan", "-i", "1", "--save-interval", "1",
                  "--monitor-path", tmp_path / "run")
    assert out.returncode == 0, out.stderr[-2000:]
    arrays, meta = checkpoint.load(tmp_path / "run" / "params_000001.safetensors")
    critic = [v for k, v in arrays.items() if k.startswith("critic/")]
    assert max(float(np.abs(v).max()) for v in critic) <= 0.01 + 1e-7
    assert meta["config"]["optimizer"] == "rmsprop" and meta["batches_read"] == 100  # 100 critic steps first
    assert "optimizer/critic/conv-1/W/v" in arrays and "optimizer/critic/conv-1/W/m" not in arrays


def test_config_file_with_flag_override(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('dataset = "8gaussians"\narch = "mlp"\nmaps = 16\nlatent = 2\nbatch-size = 16\n'
                   'max-iter = 2\nsave-interval = 2\nprogress = false\n')
    out = run_cli("train", "--config", cfg, "-i", "1", "--save-interval", "1", "--monitor-path", tmp_path / "run")
    assert out.returncode == 0, out.stderr[-2000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (config["maps"], config["batch_size"], config["max_iter"]) == (16, 16, 1)


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "wganx", "train", "--dataset", "8gaussians", "--arch", "mlp",
                             "--maps", "16", "--latent", "2", "-b", "16", "-i", "100000", "--log-interval", "1",
                             "--save-interval", "100000", "--no-progress", "--monitor-path", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((run / "losses.csv").exists() and len(read_losses(run)) >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted at iteration" in stdout and "Traceback" not in stderr
    saved = checkpoint.latest(run)
    arrays, meta = checkpoint.load(saved)
    assert meta["iteration"] >= 3 and saved.name == checkpoint.name_for(meta["iteration"])
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


class NaNAfter:
    """A dataset plugin whose batches turn NaN from batch ``k`` on."""

    def __init__(self, k):
        self.k = k

    @wganx.hookimpl
    def wganx_datasets(self):
        k = self.k

        class Data(SamplerDataset):
            def stream(self, batch_size, seed, start=0):
                for i in range(start, 10 ** 9):
                    x = np.random.default_rng([seed, i]).standard_normal((batch_size, 2)).astype(np.float32)
                    yield (x * np.nan if i >= k else x), None

        return [DatasetSpec("nan-after", lambda d, s, dl: Data(sample=None, name="nan-after"), kind="points")]


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    reg = Registry.from_plugins([NaNAfter(k=8)])
    config = tiny_config(tmp_path, dataset="nan-after", arch="mlp", latent=2, n_critic=1, max_iter=50,
                         save_interval=2)
    with pytest.raises(TrainingDiverged, match="diverged at iteration 9.*params_000008"):
        Trainer(config, reg).run()
    assert checkpoint.latest(tmp_path / "run").name == "params_000008.safetensors"
    arrays, _ = checkpoint.load(tmp_path / "run" / "params_000008.safetensors")
    assert all(np.isfinite(v).all() for v in arrays.values())


BAD_INPUT = [
    (["--backend", "caffe"], "unknown backend 'caffe'; choose one of:"),
    (["--arch", "vgg"], "unknown architecture 'vgg'; choose one of: "),
    (["--arch", "nnabla-cifar", "--up", "bicubic"], "unknown upsampler 'bicubic'; choose one of: bilinear, deconv, linear, nearest, pixelshuffle, unpooling"),
    (["--regularizer", "spectral"], "unknown regularizer 'spectral'; choose one of: "),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'; choose one of:"),
    (["--image-size", "24"], "cannot make 24x24 images"),
    (["-b", "0"], "--batch-size must be at least 1"),
    (["--lrd", "-0.1"], "--lrd must not be negative"),
    (["--critic-norm", "spectral"], "--critic-norm spectral: architecture 'dcgan' offers none"),
]


@pytest.mark.parametrize("flags,message", BAD_INPUT, ids=[m[:30] for _, m in BAD_INPUT])
def test_bad_input_is_one_line_before_training(flags, message, tmp_path):
    out = run_cli("train", *TINY, "-i", "1", *flags, "--monitor-path", tmp_path / "run")
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    if "choose one of" in message:
        kind = message.split()[1]
        reg_kind = {"arch": "architecture"}.get(kind, kind)
        assert all(name in out.stderr for name in wganx.registry().names(reg_kind))
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "run" / "losses.csv").exists()


def test_truncated_dataset_file_is_a_clear_error(tmp_path, shared_data):

    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        data = (shared_data / "mnist" / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 3] if "images" in name else data)
    out = run_cli("train", "--dataset", "mnist", "--data-dir", folder, "--no-download", "--arch", "mlp",
                  "--image-size", "28", "-i", "1", "--no-progress", "--monitor-path", tmp_path / "run")
    assert out.returncode == 2 and "train-images-idx3-ubyte" in out.stderr and "Traceback" not in out.stderr


def test_missing_dataset_without_network_says_where_to_put_files(tmp_path):
    out = run_cli("train", "--dataset", "cifar10", "--data-dir", tmp_path / "empty", "--no-download",
                  "-i", "1", "--no-progress", "--monitor-path", tmp_path / "run")
    assert out.returncode == 2 and "cifar-10" in out.stderr.lower() and str(tmp_path / "empty") in out.stderr


def test_checkpoint_from_another_architecture_is_refused(tmp_path):
    train(tiny_config(tmp_path, max_iter=1, save_interval=1))
    ckpt = tmp_path / "run" / "params_000001.safetensors"
    out = run_cli("train", *TINY, "--arch", "mlp", "-i", "2", "--resume", ckpt, "--monitor-path", tmp_path / "run")
    assert out.returncode == 2 and "--arch was 'dcgan', now 'mlp'" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("generate", "--model-load-path", ckpt, "--monitor-path", tmp_path / "gen")
    assert out.returncode == 0, out.stderr
    arrays, meta = checkpoint.load(ckpt)  # a checkpoint whose weights do not fit the settings it names
    checkpoint.save(ckpt, arrays, dict(meta, config=dict(meta["config"], maps=4)))
    out = run_cli("generate", "--model-load-path", ckpt, "--monitor-path", tmp_path / "gen", "--overwrite")
    assert out.returncode == 2 and "has shape" in out.stderr and "Traceback" not in out.stderr


def test_tensorboard_event_files_hold_the_losses(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    train(tiny_config(tmp_path, arch="mlp", max_iter=2, save_interval=2, tensorboard=True))
    files = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    tags = {(event.step, value.tag) for event in EventFileLoader(str(files[0])).Load()
            for value in event.summary.value}
    assert {(1, "critic_loss"), (2, "generator_loss"), (2, "penalty")} <= tags

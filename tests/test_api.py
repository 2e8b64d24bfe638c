"""The Python API (``wganx.train``, ``wganx.load``, ``wganx.evaluate``): the same names,
defaults and protections as the commands, real runs on the real backends."""
import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import fields

import numpy as np
import pytest

import wganx
from wganx import checkpoint
from wganx.cli import command, main
from wganx.config import TrainConfig, default_of
from wganx.runfolder import RunFolderError

from conftest import available_backends

pytestmark = pytest.mark.skipif(not available_backends(), reason="no backend installed")

# The 8-Gaussians toy at a size that trains in about a second; one thread, so that runs compare
# equal on a busy machine.
TOY = dict(dataset="8gaussians", arch="mlp", maps=16, latent=2, batch_size=32, log_interval=1, threads=1,
           progress=False)


def toy(folder, **settings):
    return wganx.train(**{**TOY, "monitor_path": folder, **settings})


def test_the_settings_are_the_commands_options_with_their_defaults():
    params = inspect.signature(wganx.train).parameters
    assert list(params) == ["config_file"] + [f.name for f in fields(TrainConfig)]
    options = {p.name for p in command("train").params}
    assert set(params) - {"config_file"} == options - {"config_file", "quiet"}
    for f in fields(TrainConfig):  # the default, or where the CLI's help says it comes from
        default = params[f.name].default
        assert default == default_of(f.name) or repr(default) == f"<{f.metadata['shown_default']}>", f.name
    assert repr(params["backend"].default) == "<$WGANX_BACKEND, else torch>"


@pytest.mark.parametrize("settings,message", [
    (dict(max_iters=3), "wganx.train: unknown setting 'max_iters'; did you mean 'max_iter'?"),
    (dict(max_iter="3"), "wganx.train: max_iter must be an integer, got a string ('3')"),
    (dict(context="gpu"), "context must be one of cpu, cuda, cudnn, got 'gpu'"),
    (dict(dataset="nosuch"), "unknown dataset 'nosuch'; choose one of:"),
    (dict(batch_size=0), "batch_size must be at least 1, got 0"),
    (dict(resume=True, overwrite=True), "resume=True continues the run in monitor_path and overwrite=True replaces it"),
])
def test_settings_are_checked_before_any_folder_or_framework(tmp_path, settings, message):
    folder = tmp_path / "run"
    with pytest.raises(wganx.WganxError) as info:
        toy(folder, **settings)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "--" not in str(info.value)  # told in the keywords a Python caller writes, not in flags
    assert not folder.exists()


def test_train_returns_the_run_and_load_samples_it_alike_on_every_backend(tmp_path, backend_name):
    result = toy(tmp_path / "run", backend=backend_name, max_iter=6, save_interval=3)
    assert (result.status, result.iteration, result.run_folder) == ("finished", 6, tmp_path / "run")
    assert result.checkpoint == tmp_path / "run" / "params_000006.safetensors" and result.checkpoint.is_file()
    assert list(result.losses["iteration"]) == [1, 2, 3, 4, 5, 6]
    assert set(result.losses) >= {"critic_loss", "generator_loss", "penalty", "wasserstein_estimate"}
    assert result.last_losses["critic_loss"] == pytest.approx(result.losses["critic_loss"][-1])
    assert result.config.max_iter == 6 and result.config.lambda_ == 0.1  # the toy's recommendation filled it
    assert type(result.plot_losses()._repr_png_()) is bytes

    samples, critic = {}, {}
    for other in available_backends():
        gan = wganx.load(result.checkpoint, other, threads=1)
        assert (gan.backend, gan.trained_with, gan.iteration, gan.data_kind) == (other, backend_name, 6, "points")
        samples[other] = gan.sample(10, seed=3)
        assert samples[other].shape == (10, 2) and samples[other].dtype == np.float32
        critic[other] = gan.critic(samples[other])
        assert critic[other].shape == (10,)
    for other in samples:  # a checkpoint samples and judges the same on every backend
        np.testing.assert_allclose(samples[other], samples[backend_name], atol=1e-5)
        np.testing.assert_allclose(critic[other], critic[backend_name], rtol=1e-4, atol=1e-5)
    gan = result.load(threads=1)
    assert np.array_equal(gan.sample(10, seed=3), gan.sample(10, seed=3))
    assert not np.array_equal(gan.sample(10, seed=3), gan.sample(10, seed=4))
    assert wganx.load(tmp_path / "run", threads=1).checkpoint == result.checkpoint  # a folder: its newest
    with pytest.raises(wganx.WganxError, match="not class-conditional"):
        gan.sample(4, labels=1)
    with pytest.raises(wganx.WganxError, match=r"takes samples of shape \(2,\)"):
        gan.critic(np.zeros((4, 3)))
    assert type(gan.show()._repr_png_()) is bytes  # the critic's contour under the samples


def test_resume_and_overwrite_from_python(tmp_path):
    folder = tmp_path / "run"
    toy(folder, max_iter=4, save_interval=2)
    with pytest.raises(RunFolderError, match="already holds a run .*; continue it with resume=True, replace it with "
                                             "overwrite=True, or choose another monitor_path"):
        toy(folder, max_iter=4, save_interval=2)
    resumed = toy(folder, max_iter=6, save_interval=2, resume=True)
    assert resumed.iteration == 6 and list(resumed.losses["iteration"]) == [1, 2, 3, 4, 5, 6]
    replaced = toy(folder, max_iter=2, save_interval=2, overwrite=True)
    assert list(replaced.losses["iteration"]) == [1, 2]
    assert [p.name for p in checkpoint.checkpoints(folder)] == ["params_000002.safetensors"]


def test_a_second_train_into_a_locked_folder_is_refused(tmp_path):
    folder = tmp_path / "run"
    script = f"import wganx; wganx.train(**{dict(TOY, max_iter=10 ** 6, save_interval=10 ** 6)!r}, monitor_path={str(folder)!r})"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (folder / "losses.csv").is_file():
            time.sleep(0.2)
        assert (folder / "losses.csv").is_file(), proc.stderr.read() if proc.poll() is not None else "no run"
        with pytest.raises(RunFolderError, match=f"in use by another wganx run \\(PID {proc.pid} "):
            toy(folder, max_iter=2, overwrite=True)
        assert (folder / "losses.csv").is_file()  # not overwritten
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1  # a script stops (Python exits 1 for a subclass of KeyboardInterrupt)
    assert "TrainingInterrupted: training stopped by SIGINT at iteration" in err
    assert len(checkpoint.checkpoints(folder)) == 1  # the interrupted iteration, saved


def test_ctrl_c_in_the_loop_saves_the_iteration_and_keeps_the_checkpoints(tmp_path):
    """SIGINT, as a terminal's Ctrl-C or a Jupyter kernel's interrupt sends it, in mid-run."""
    folder = tmp_path / "run"

    def interrupt_after_first_checkpoint():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not checkpoint.checkpoints(folder):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt_after_first_checkpoint)
    sender.start()
    try:
        with pytest.raises(wganx.TrainingInterrupted) as info:
            toy(folder, max_iter=10 ** 6, save_interval=5)
    finally:
        sender.join()
    stop = info.value
    assert isinstance(stop, KeyboardInterrupt) and stop.signum == signal.SIGINT
    result = stop.result
    assert result.status == "interrupted" and result.iteration >= 5
    assert result.checkpoint == folder / checkpoint.name_for(result.iteration)
    assert checkpoint.load(result.checkpoint)[1]["iteration"] == result.iteration
    assert f"at iteration {result.iteration}; the last checkpoint is {result.checkpoint}" in str(stop)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back
    resumed = toy(folder, max_iter=result.iteration + 2, save_interval=5, resume=True)  # the lock was released
    assert resumed.iteration == result.iteration + 2


def test_evaluate_reports_what_the_command_reports(tmp_path, capsys):
    result = toy(tmp_path / "run", max_iter=4, save_interval=4)
    values = wganx.evaluate(result.checkpoint, num_samples=300)
    assert main(["evaluate", "--model-load-path", result.checkpoint, "--num-samples", "300", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["values"] == values
    assert set(values) >= {"modes_covered", "high_quality_share", "energy_distance"}
    gan = wganx.load(result.checkpoint, threads=1)
    assert wganx.evaluate(gan, num_samples=300) == pytest.approx(values)
    assert wganx.evaluate(tmp_path / "run", num_samples=300) == pytest.approx(values)  # its newest checkpoint
    points = gan.sample(300, seed=0)
    assert wganx.evaluate(points, reference="8gaussians") == pytest.approx(values)
    np.savez(tmp_path / "samples.npz", points=points)
    assert wganx.evaluate(tmp_path / "samples.npz", reference="8gaussians") == pytest.approx(values)
    with pytest.raises(wganx.WganxError, match="unknown option 'num_sample'; did you mean 'num_samples'"):
        wganx.evaluate(gan, num_sample=3)
    with pytest.raises(wganx.WganxError, match="which real dataset"):
        wganx.evaluate(points)


def test_import_wganx_stays_light_and_the_api_is_at_the_top():
    code = textwrap.dedent("""
        import sys, wganx
        print(sorted(m for m in ("torch", "tensorflow", "nnabla", "typer", "matplotlib", "IPython") if m in sys.modules))
        print(callable(wganx.evaluate), wganx.evaluate.__name__, wganx.train.__module__, wganx.load.__module__)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "True wganx.evaluate wganx.api wganx.gan"]

"""What wganx promises about a user's data (docs/guarantees.rst): run folders are never
silently reused, one run at a time, checkpoints are never poisoned, a crash, a kill -9, a
full disk or a signal loses nothing already written, and every bad input is one line.

Faults are real: a tmpfs mounted full or read-only, SIGKILL in the middle of a write,
SIGINT and SIGTERM sent to a training process."""
import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from wganx import checkpoint
from wganx.cli import main as cli_main
from wganx.config import TrainConfig, load_toml
from wganx.errors import WganxError
from wganx.plugins import Registry
from wganx.runfolder import RunFolderError
from wganx.training import TrainingDiverged, Trainer, train

from test_training import NaNAfter

# Every setting the dataset and the architecture recommend is given, so that stderr holds
# nothing but what a test provokes.
TOY = ["--dataset", "8gaussians", "--arch", "mlp", "--maps", "8", "--latent", "2", "-b", "16", "--lambda", "0.1",
       "--lrg", "1e-4", "--lrd", "1e-4", "--lr-decay", "constant", "--ema-decay", "0",
       "--log-interval", "1", "--num-samples", "16", "--no-progress"]


def toy_config(folder, **overrides):
    values = dict(dataset="8gaussians", arch="mlp", maps=8, latent=2, batch_size=16, max_iter=4, save_interval=2,
                  log_interval=1, num_samples=16, progress=False, monitor_path=str(folder))
    values.update(overrides)
    return TrainConfig(**values)


def cli(capsys, *args):
    """``wganx ARGS`` in this process: (exit code, stderr); the CLI's own error handling runs."""
    code = cli_main([str(a) for a in args])
    return code, capsys.readouterr().err


def one_line_error(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def loss_rows(folder):
    with open(Path(folder) / "losses.csv", newline="") as f:
        return list(csv.DictReader(f))


def all_checkpoints_load(folder):
    found = checkpoint.checkpoints(folder)
    for path in found:
        checkpoint.load(path)
    assert not [p for p in Path(folder).rglob("*.tmp")]
    return found


@contextlib.contextmanager
def tmpfs(path, size="1m", read_only=False):
    """A real small file system at ``path`` (root only: skipped elsewhere)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def training_process(*args):
    """``wganx train ARGS`` in a child process, killed by PID on the way out."""
    proc = subprocess.Popen([sys.executable, "-m", "wganx", "train", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)


def wait_for(condition, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def has_rows(folder, n):
    try:
        return len(loss_rows(folder)) >= n
    except (OSError, csv.Error):
        return False


# -- the run folder ----------------------------------------------------------------------------

def test_a_second_run_into_a_used_folder_is_refused_until_resume_or_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    train(toy_config(run, max_iter=4, save_interval=4))
    config_before = (run / "config.json").read_bytes()
    code, err = cli(capsys, "train", *TOY, "-i", "2", "--monitor-path", run)
    one_line_error(code, err, "already holds a run", "--resume", "--overwrite")
    assert len(loss_rows(run)) == 4 and (run / "config.json").read_bytes() == config_before

    result = train(toy_config(run, max_iter=2, save_interval=2, seed=1, overwrite=True))
    assert result["status"] == "finished"
    assert "--overwrite: removed the earlier run's" in capsys.readouterr().err
    assert [p.name for p in checkpoint.checkpoints(run)] == ["params_000002.safetensors"]
    assert len(loss_rows(run)) == 2 and json.loads((run / "config.json").read_text())["seed"] == 1


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    code, err = cli(capsys, "train", *TOY, "--resume", "--overwrite", "--monitor-path", tmp_path / "run")
    one_line_error(code, err, "give one of them")


def test_two_runs_into_one_folder_the_second_names_the_first_pid(tmp_path):
    run = tmp_path / "run"
    with training_process(*TOY, "-i", "100000", "--save-interval", "5", "--monitor-path", run) as first:
        wait_for(lambda: checkpoint.latest(run) is not None)
        with pytest.raises(RunFolderError, match=f"in use by another wganx run \\(PID {first.pid} on "):
            Trainer(toy_config(run, resume="latest"))
        first.send_signal(signal.SIGKILL)  # a dead holder's lock is released by the kernel
        first.wait(timeout=60)
    all_checkpoints_load(run)
    reached = checkpoint.load(checkpoint.latest(run))[1]["iteration"]
    result = train(toy_config(run, resume="latest", max_iter=reached + 1))
    assert result["status"] == "finished"


def test_a_failed_start_leaves_no_folder_behind(tmp_path, capsys):
    code, err = cli(capsys, "train", *TOY, "--resume", "--monitor-path", tmp_path / "new")
    one_line_error(code, err, "no checkpoint")
    assert not (tmp_path / "new").exists()


def test_monitor_path_that_is_a_file_or_under_one(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    code, err = cli(capsys, "train", *TOY, "--monitor-path", tmp_path / "file")
    one_line_error(code, err, "is a file, not a folder")
    code, err = cli(capsys, "train", *TOY, "--monitor-path", tmp_path / "file" / "run")
    one_line_error(code, err, f"lies under {tmp_path / 'file'}, which is a file")
    assert (tmp_path / "file").read_text() == "mine"


def test_read_only_file_system(tmp_path, capsys):
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        code, err = cli(capsys, "train", *TOY, "--monitor-path", ro / "run")
    one_line_error(code, err, "Read-only file system")


def test_full_disk_keeps_the_last_good_checkpoint_and_says_which(tmp_path, capsys):
    with tmpfs(tmp_path / "small", size="160k") as small:
        run = small / "run"
        code, err = cli(capsys, "train", *TOY, "-i", "100000", "--save-interval", "1", "--log-interval", "1",
                        "--monitor-path", run)
        one_line_error(code, err, "No space left on device", "the last good checkpoint is ")
        named = Path(err.split("the last good checkpoint is ")[1].strip())
        found = all_checkpoints_load(run)
        assert named == found[-1], (named, found)


def test_kill_9_in_mid_write_leaves_temporary_files_that_the_next_start_removes(tmp_path, capsys):
    run = tmp_path / "run"
    train(toy_config(run, max_iter=2, save_interval=2))
    for target in (run / "params_000004.safetensors", run / "samples" / "fixed_000004.png"):
        killed = subprocess.run([sys.executable, "-c", (
            "import os, signal, sys\nfrom wganx.checkpoint import atomic_write\n"
            "def write(tmp):\n    open(tmp, 'wb').write(b'half')\n    os.kill(os.getpid(), signal.SIGKILL)\n"
            "atomic_write(sys.argv[1], write)\n"), str(target)])
        assert killed.returncode == -signal.SIGKILL
    assert len(list(run.rglob(".*.tmp"))) == 2
    train(toy_config(run, max_iter=3, save_interval=3, resume="latest"))
    assert "removed 2 unfinished temporary files" in capsys.readouterr().err
    assert not list(run.rglob("*.tmp"))


def test_files_honour_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        train(toy_config(tmp_path / "run", max_iter=1, save_interval=1))
    finally:
        os.umask(previous)
    for name in ("params_000001.safetensors", "config.json", "losses.csv", "losses.png", "samples/fixed_000001.png"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o640, name


# -- divergence --------------------------------------------------------------------------------

def test_divergence_never_writes_a_non_finite_checkpoint(tmp_path):
    # NaN data from batch 4 on poisons the weights at iteration 5; the loss check (every 10)
    # comes after the checkpoint of iteration 6, which must not be written.
    reg = Registry.from_plugins([NaNAfter(k=4)])
    config = toy_config(tmp_path / "run", dataset="nan-after", n_critic=1, max_iter=50, save_interval=3,
                        log_interval=10)
    with pytest.raises(TrainingDiverged, match=r"diverged by iteration 6: .* not finite.*"
                                               r"the last good checkpoint is .*params_000003"):
        Trainer(config, reg).run()
    assert [p.name for p in all_checkpoints_load(tmp_path / "run")] == ["params_000003.safetensors"]


def poison(path, dest):
    """A copy of checkpoint ``path`` with a NaN in one weight, metadata unchanged."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as f:
        metadata, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    name = next(k for k in arrays if k.startswith("generator/"))
    arrays[name].flat[0] = np.nan
    save_file(arrays, str(dest), metadata=metadata)
    return name


def test_a_non_finite_checkpoint_is_refused_by_generate_evaluate_and_resume(tmp_path, capsys):
    run = tmp_path / "run"
    train(toy_config(run, max_iter=4, save_interval=2))
    name = poison(run / "params_000004.safetensors", run / "params_000004.safetensors")
    for command in (["generate", "--monitor-path", tmp_path / "gen"], ["evaluate", "--num-samples", "50"]):
        code, err = cli(capsys, *command, "--model-load-path", run / "params_000004.safetensors")
        one_line_error(code, err, "non-finite values", name)
    code, err = cli(capsys, "train", *TOY, "-i", "5", "--resume", run / "params_000004.safetensors",
                    "--monitor-path", run)
    one_line_error(code, err, "non-finite values")
    result = train(toy_config(run, max_iter=5, save_interval=5, resume="latest"))  # falls back, says so
    assert "skipping params_000004.safetensors" in capsys.readouterr().err
    assert result["status"] == "finished" and [int(r["iteration"]) for r in loss_rows(run)] == [1, 2, 3, 4, 5]


# -- resume ------------------------------------------------------------------------------------

def test_resume_falls_back_from_a_truncated_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    train(toy_config(run, max_iter=4, save_interval=2))
    data = (run / "params_000004.safetensors").read_bytes()
    (run / "params_000004.safetensors").write_bytes(data[: len(data) // 2])
    result = train(toy_config(run, max_iter=4, save_interval=2, resume="latest"))
    err = capsys.readouterr().err
    assert "skipping params_000004.safetensors, which does not load" in err
    assert result["status"] == "finished" and checkpoint.load(run / "params_000004.safetensors")


def test_resume_recovers_from_a_damaged_tail_of_losses_csv(tmp_path, capsys):
    run = tmp_path / "run"
    train(toy_config(run, max_iter=4, save_interval=4))
    with open(run / "losses.csv", "a") as f:
        f.write("5,0.25,not-a-number,1,2,3,4\n6,0.1\x00\x00")  # a garbage row, then a cut one
    result = train(toy_config(run, max_iter=6, save_interval=6, resume="latest"))
    assert "dropped 2 damaged rows (line 6, 7)" in capsys.readouterr().err
    assert result["status"] == "finished" and [int(r["iteration"]) for r in loss_rows(run)] == list(range(1, 7))


def test_resume_says_what_changed_and_keeps_the_history_of_settings(tmp_path, capsys):
    run = tmp_path / "run"
    train(toy_config(run, max_iter=2, save_interval=2))
    train(toy_config(run, max_iter=3, save_interval=2, resume="latest", batch_size=8, lrd=2e-4, seed=3))
    err = capsys.readouterr().err
    assert "resuming with changed settings: batch-size 16 -> 8, lrd 0.0001 -> 0.0002, seed 0 -> 3\n" in err
    info = json.loads((run / "config.json").read_text())
    assert info["config"]["batch_size"] == 8 and info["started_at_iteration"] == 2
    assert [(h["started_at_iteration"], h["config"]["batch_size"]) for h in info["history"]] == [(0, 16)]


@pytest.mark.parametrize("change,message", [
    (dict(arch="dcgan", dataset="digits", image_size=16), "--arch was 'mlp', now 'dcgan'"),
    (dict(dataset="25gaussians"), "--dataset was '8gaussians', now '25gaussians'"),
    (dict(maps=16), "--maps was 8, now 16"),
])
def test_resume_refuses_another_model_or_dataset(tmp_path, change, message):
    run = tmp_path / "run"
    train(toy_config(run, max_iter=1, save_interval=1))
    with pytest.raises(WganxError, match="keeps the model and the data") as info:
        Trainer(toy_config(run, max_iter=2, resume="latest", **change))
    assert message in str(info.value)
    assert len(loss_rows(run)) == 1


def test_resume_from_an_older_checkpoint_would_not_overwrite_newer_ones(tmp_path):
    run = tmp_path / "run"
    train(toy_config(run, max_iter=4, save_interval=2))
    with pytest.raises(WganxError, match="holds newer checkpoints \\(params_000004.safetensors\\)"):
        Trainer(toy_config(run, max_iter=4, resume=str(run / "params_000002.safetensors")))


# -- signals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_the_iteration_and_exits_by_convention(tmp_path, signum, code):
    run = tmp_path / "run"
    with training_process(*TOY, "-i", "100000", "--save-interval", "100000", "--monitor-path", run) as proc:
        wait_for(lambda: has_rows(run, 2))
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "interrupted at iteration" in out and "Traceback" not in err
    assert len(all_checkpoints_load(run)) == 1


def test_ctrl_c_twice_stops_at_once_and_keeps_the_checkpoints(tmp_path):
    run = tmp_path / "run"
    with training_process(*TOY, "-i", "100000", "--save-interval", "3", "--monitor-path", run) as proc:
        wait_for(lambda: len(checkpoint.checkpoints(run)) >= 2)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert len(all_checkpoints_load(run)) >= 2


def test_ctrl_c_during_start_up(tmp_path):
    run = tmp_path / "run"
    with training_process(*TOY, "-i", "5", "--monitor-path", run) as proc:
        wait_for(lambda: (run / ".wganx.lock").exists())  # the folder is open, training has not begun
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert "stopped by SIGINT" in err or "interrupted at iteration" in out


# -- input that is not what it should be --------------------------------------------------------

@pytest.mark.parametrize("value,given", [('"64"', "a string"), ("6.5", "a number"), ("[64]", "a list")])
def test_toml_value_of_the_wrong_type(tmp_path, capsys, value, given):
    path = tmp_path / "run.toml"
    path.write_text(f"batch-size = {value}\n")
    with pytest.raises(WganxError, match=f"batch-size must be an integer, got {given}"):
        load_toml(str(path))
    code, err = cli(capsys, "train", "--config", path, "--monitor-path", tmp_path / "run")
    one_line_error(code, err, "batch-size must be an integer")
    path.write_text('lrd = "fast"\ncontext = "gpu"\n')
    with pytest.raises(WganxError, match="lrd must be a number, got a string"):
        load_toml(str(path))


def test_toml_choice_out_of_range_is_refused(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text('context = "gpu"\n')
    code, err = cli(capsys, "train", "--config", path, "--monitor-path", tmp_path / "run")
    one_line_error(code, err, "--context must be one of cpu, cuda, cudnn, got 'gpu'")


def write_checkpoint(path, metadata):
    from safetensors.numpy import save_file

    save_file({"generator/W": np.zeros((2, 2), np.float32)}, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("metadata,message", [
    ({"format": checkpoint.FORMAT, "wganx": "{not json"}, "metadata is not valid JSON"),
    ({"format": checkpoint.FORMAT, "wganx": json.dumps({"iteration": 3})}, "lacks config, sample_shape"),
    ({"format": "wganx-checkpoint-2", "wganx": json.dumps({"wganx": "0.9.0"})},
     "newer format (wganx-checkpoint-2, written by wganx 0.9.0); this wganx 0.1.0 reads wganx-checkpoint-1 "
     "only: pip install --upgrade 'wganx>=0.9.0'"),
    ({"format": "something-else"}, "is not a wganx checkpoint"),
])
def test_damaged_or_foreign_checkpoint_metadata(tmp_path, capsys, metadata, message):
    path = write_checkpoint(tmp_path / "params_000003.safetensors", metadata)
    code, err = cli(capsys, "generate", "--model-load-path", path, "--monitor-path", tmp_path / "gen")
    one_line_error(code, err, message)
    assert not (tmp_path / "gen").exists()


def test_a_checkpoint_of_a_newer_wganx_in_the_same_format_says_so(tmp_path, capsys):
    train(toy_config(tmp_path / "run", max_iter=1, save_interval=1))
    path = tmp_path / "run" / "params_000001.safetensors"
    arrays, meta = checkpoint.load(path)
    checkpoint.save(path, arrays, dict(meta, wganx="9.0.0"))
    checkpoint.load(path)
    assert "written by wganx 9.0.0, newer than this 0.1.0; reading it as wganx-checkpoint-1" in \
        capsys.readouterr().err


def test_evaluate_refuses_an_npz_without_images_or_points(tmp_path, capsys):
    np.savez(tmp_path / "other.npz", latents=np.zeros((10, 2), np.float32))
    code, err = cli(capsys, "evaluate", "--samples", tmp_path / "other.npz")
    one_line_error(code, err, "holds latents; expected an 'images' or 'points' array")


@pytest.mark.parametrize("flag,message", [
    (["--keep-checkpoints", "-1"], "--keep-checkpoints must not be negative"),
    (["--eval-samples", "0"], "--eval-samples must be at least 1"),
    (["--threads", "-2"], "--threads must not be negative, got -2"),
    (["--seed", "-1"], "--seed must not be negative, got -1"),  # numpy's ValueError reached users
    (["-d", "-1"], "--device-id must not be negative, got -1"),
])
def test_more_bad_values(tmp_path, capsys, flag, message):
    code, err = cli(capsys, "train", *TOY, *flag, "--monitor-path", tmp_path / "run")
    one_line_error(code, err, message)
    assert not (tmp_path / "run").exists()


def test_a_failed_download_creates_no_data_folder(tmp_path, monkeypatch):
    from wganx_plugins import datasets as ds

    monkeypatch.setitem(ds.MIRRORS, "mnist", [(tmp_path / "nowhere").as_uri() + "/"])
    data_dir = tmp_path / "not" / "there"
    with pytest.raises(WganxError, match="could not be downloaded"):
        Trainer(toy_config(tmp_path / "run", dataset="mnist", arch="mlp", image_size=28, data_dir=str(data_dir)))
    assert not (tmp_path / "not").exists() and not (tmp_path / "run").exists()


def test_every_test_the_guarantees_page_names_exists():
    root = Path(__file__).parents[1]
    named = set(re.findall(r"``(test_\w+)``", (root / "docs" / "guarantees.rst").read_text()))
    files = [*(root / "tests").glob("test_*.py"), *(root / "backends").glob("*/tests/test_*.py")]
    defined = {m for f in files for m in re.findall(r"^def (test_\w+)", f.read_text(), re.M)}
    assert len(named) >= 20 and named <= defined, sorted(named - defined)


def test_generate_into_a_file_is_one_line(tmp_path, capsys):
    train(toy_config(tmp_path / "run", max_iter=1, save_interval=1))
    (tmp_path / "file").write_text("mine")
    code, err = cli(capsys, "generate", "--model-load-path", tmp_path / "run" / "params_000001.safetensors",
                    "--monitor-path", tmp_path / "file")
    one_line_error(code, err, str(tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "mine"


def test_generate_keeps_earlier_outputs_unless_told(tmp_path, capsys):
    train(toy_config(tmp_path / "run", max_iter=1, save_interval=1))
    ckpt = tmp_path / "run" / "params_000001.safetensors"
    gen = ["generate", "--model-load-path", ckpt, "--monitor-path", tmp_path / "gen", "--num-images", "8"]
    assert cli(capsys, *gen)[0] == 0
    before = {name: (tmp_path / "gen" / name).read_bytes() for name in ("samples.npz", "generated.png")}
    code, err = cli(capsys, *gen, "--seed", "1")
    one_line_error(code, err, "already holds generated.png and samples.npz: replace with --overwrite")
    assert {name: (tmp_path / "gen" / name).read_bytes() for name in before} == before
    assert cli(capsys, *gen, "--seed", "1", "--format", "npz", "--overwrite")[0] == 0
    assert (tmp_path / "gen" / "samples.npz").read_bytes() != before["samples.npz"]
    assert (tmp_path / "gen" / "generated.png").read_bytes() == before["generated.png"]

"""wganx.runfolder: the run folder opened for one run, directly, without training (the
end-to-end guarantees built on it are in test_safety.py)."""
import os
import subprocess
import sys

import pytest

from wganx.runfolder import LOCK_NAME, RunFolder, RunFolderError


def fake_run(folder, iteration=4):
    """A folder as a finished run leaves it: the markers, a checkpoint, samples, and a file
    of the user's that is no run output."""
    (folder / "samples").mkdir(parents=True)
    for name in ("config.json", "losses.csv", "losses.png", "progress.gif"):
        (folder / name).write_text(name)
    (folder / f"params_{iteration:06d}.safetensors").write_bytes(b"weights")
    (folder / "samples" / f"fixed_{iteration:06d}.png").write_bytes(b"png")
    (folder / "notes.txt").write_text("mine")


def test_a_fresh_folder_is_made_locked_and_names_its_holder(tmp_path):
    run = RunFolder(tmp_path / "a" / "run")
    try:
        assert run.path.is_dir() and run.run_files() == []
        assert (run.path / LOCK_NAME).read_text().startswith(f"PID {os.getpid()} on ")
    finally:
        run.close()


def test_the_lock_is_exclusive_within_one_process_and_free_after_close(tmp_path):
    first = RunFolder(tmp_path / "run")
    with pytest.raises(RunFolderError, match=f"PID {os.getpid()}"):
        RunFolder(tmp_path / "run")
    first.close()
    RunFolder(tmp_path / "run").close()


def test_another_process_holding_the_lock_is_refused_and_a_dead_one_is_not(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom wganx.runfolder import RunFolder\n"
        f"RunFolder({str(tmp_path / 'run')!r})\nprint('held', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderError, match=f"in use by another wganx run \\(PID {holder.pid} on "):
            RunFolder(tmp_path / "run")
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
    RunFolder(tmp_path / "run").close()  # the kernel released the dead holder's lock


def test_a_run_is_refused_until_resume_or_overwrite_and_overwrite_removes_only_run_outputs(tmp_path, capsys):
    fake_run(tmp_path / "run")
    with pytest.raises(RunFolderError, match=r"already holds a run \(config.json, losses.csv, "
                                             r"params_000004.safetensors\); continue it with --resume"):
        RunFolder(tmp_path / "run")
    RunFolder(tmp_path / "run", resume=True).close()
    assert (tmp_path / "run" / "params_000004.safetensors").exists()
    RunFolder(tmp_path / "run", overwrite=True).close()
    assert "removed the earlier run's 6 files" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK_NAME, "notes.txt"]


def test_temporary_files_of_a_killed_write_are_removed_on_opening(tmp_path, capsys):
    fake_run(tmp_path / "run")
    leftovers = [tmp_path / "run" / ".params_000006.safetensors.123.tmp",
                 tmp_path / "run" / "samples" / ".fixed_000006.png.123.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    RunFolder(tmp_path / "run", resume=True).close()
    assert not any(p.exists() for p in leftovers)
    assert "removed 2 unfinished temporary files" in capsys.readouterr().err


def test_a_failed_open_removes_only_the_folder_it_made(tmp_path):
    (tmp_path / "old").mkdir()
    for path in (tmp_path / "new", tmp_path / "old"):
        folder = RunFolder(path)
        folder.close(failed=True)
    assert not (tmp_path / "new").exists() and (tmp_path / "old").is_dir()


@pytest.mark.parametrize("under", [False, True])
def test_a_file_in_the_way_is_named(tmp_path, under):
    (tmp_path / "file").write_text("mine")
    path = tmp_path / "file" / "run" if under else tmp_path / "file"
    message = f"lies under {tmp_path / 'file'}, which is a file" if under else "is a file, not a folder"
    with pytest.raises(RunFolderError, match=message):
        RunFolder(path)
    assert (tmp_path / "file").read_text() == "mine"

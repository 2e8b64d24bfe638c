"""The scripts in benchmarks/ end to end at toy sizes: quality.py's page, curves and JSON, and the step probe."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MNIST, REPO, available_backends, needs_mnist

SCRIPT = REPO / "benchmarks" / "quality.py"


def quality_command(*args):
    return [sys.executable, str(SCRIPT), *map(str, args)]


def run_quality(*args, timeout=600):
    return subprocess.run(quality_command(*args), capture_output=True, text=True, cwd=REPO, timeout=timeout)


@pytest.mark.skipif(not available_backends(), reason="no backend installed")
def test_toy_benchmark_writes_table_curves_and_json(tmp_path):
    backend = available_backends()[0]
    out = tmp_path / "out"
    proc = run_quality("--backends", backend, "--toy-iters", "8gaussians=4,25gaussians=6", "--toy-maps", 8,
                       "--mnist-iters", 0, "--jobs", 2, "--settings", "recommended,paper", "--out", out,
                       "--work", tmp_path / "work")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    page = (out / "quality.md").read_text()
    for name in ("recommended", "paper"):
        assert f"| 8gaussians | {backend}, {name} | 4 | " in page and f"| 25gaussians | {backend}, {name} | 6 | " in page
    assert "--toy-iters 8gaussians=4,25gaussians=6" in page and "--jobs 2" in page
    assert "--settings recommended,paper" in page and "**paper**: Adam lr 1e-4" in page
    assert ("**recommended**: `--lrg 0.001 --lrd 0.001 --lr-decay linear --ema-decay 0.99 --lambda 0.1`; "
            "**paper**: `--lambda 0.1`.") in page
    for name in ("quality-8gaussians_curves.png", "quality-25gaussians_curves.png", f"8gaussians_{backend}_recommended.png",
                 f"8gaussians_{backend}_paper.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = json.loads((out / "quality.json").read_text())
    assert report["toy_iters"] == {"8gaussians": 4, "25gaussians": 6} and report["failures"] == []
    rows = {r["backend"]: r for r in report["toy"]["25gaussians"]}
    # what each row was trained with, where it differs from wganx train's defaults
    assert rows[f"{backend}, paper"]["settings"] == {"lambda_": 0.1}
    assert rows[f"{backend}, recommended"]["settings"] == {"lrg": 1e-3, "lrd": 1e-3, "lr_decay": "linear",
                                                           "ema_decay": 0.99, "lambda_": 0.1}
    curve = rows[f"{backend}, recommended"]["curve"]
    assert [p["iteration"] for p in curve] == [1, 2, 3, 4, 5, 6]  # an evaluation every max(1, 6 // 20)
    assert all(0 <= p["high_quality_share"] <= 1 and p["modes_covered"] <= 25 for p in curve)
    assert "| target held from |" in page and "| not met |" in page  # 6 iterations of a width-8 MLP


def test_target_held_from_is_the_start_of_the_last_run_of_met_evaluations():
    sys.path.insert(0, str(SCRIPT.parent))
    import quality

    def row(*points):
        return {"modes_total": 8, "curve": [{"iteration": i, "modes_covered": m, "high_quality_share": q}
                                            for i, m, q in points]}

    assert quality.target_held_from(row((1, 8, 0.95), (2, 7, 0.95), (3, 8, 0.91), (4, 8, 0.93)), "8gaussians") == 3
    assert quality.target_held_from(row((1, 8, 0.95), (2, 8, 0.89)), "8gaussians") is None
    assert quality.target_held_from(row((1, 8, 0.85), (2, 8, 0.81)), "25gaussians") == 1


@needs_mnist
@pytest.mark.skipif(not available_backends(), reason="no backend installed")
def test_mnist_rows_have_curves_and_a_rerun_keeps_finished_runs(tmp_path, mnist_classifier):
    """MNIST rows with and without the moving average, each with its learning curve; run again
    over the same --work, the finished runs are evaluated again, not retrained."""
    backend = available_backends()[0]
    out = tmp_path / "out"
    args = ("--backends", backend, "--toy-iters", 0, "--mnist-iters", 3, "--eval-samples", 200, "--data-dir", MNIST,
            "--settings", "recommended,recommended-no-ema", "--out", out, "--work", tmp_path / "work")
    first = run_quality(*args)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "finished earlier" not in first.stdout
    page = (out / "quality.md").read_text()
    assert "![MNIST learning curves](quality-mnist_curves.png)" in page
    assert (out / "quality-mnist_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {r["backend"]: r for r in json.loads((out / "quality.json").read_text())["mnist"]}
    for name in ("recommended", "recommended-no-ema"):
        curve = rows[f"{backend}, {name}"]["curve"]
        assert [p["iteration"] for p in curve] == [1, 2, 3]  # an evaluation every max(1, 3 // 10)
        assert all(p["domain_fid"] > 0 and 0 <= p["domain_classes_covered"] <= 10 for p in curve)
    again = run_quality(*args)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert again.stdout.count("finished earlier, evaluated again") == 2
    rerun = {r["backend"]: r for r in json.loads((out / "quality.json").read_text())["mnist"]}
    for label, row in rows.items():  # the same checkpoint and seeds: the same figures and train time
        assert rerun[label]["domain_fid"] == pytest.approx(row["domain_fid"], rel=1e-9)
        assert rerun[label].get("curve") == row.get("curve") and rerun[label]["seconds"] == row["seconds"]


def children(pid: int) -> set:
    """The processes ``pid`` started (Linux /proc)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
@pytest.mark.skipif(not available_backends(), reason="no backend installed")
def test_sigterm_stops_the_worker_processes_too(tmp_path):
    # four runs on two workers: two wait in the pool's queue and must not start either
    args = ("--backends", available_backends()[0], "--toy-iters", 1_000_000, "--toy-maps", 8, "--mnist-iters", 0,
            "--settings", "recommended,paper", "--jobs", 2, "--out", tmp_path / "out", "--work", tmp_path / "work")
    proc = subprocess.Popen(quality_command(*args), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    workers = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((tmp_path / "work").glob("*/losses.csv")):
            workers |= children(proc.pid)
            time.sleep(0.2)
        workers |= children(proc.pid)
        assert list((tmp_path / "work").glob("*/losses.csv")), "no run started training in 120 s"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130 and "interrupted" in err, err[-2000:]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(alive(pid) for pid in workers):
            time.sleep(0.2)
        assert not [pid for pid in workers if alive(pid)], "worker processes outlived the benchmark"
        # at most the two the workers had begun (on a busy machine the second may not have yet)
        assert len(list((tmp_path / "work").iterdir())) <= 2, "a queued run started after SIGTERM"
    finally:
        for pid in [proc.pid, *workers]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_toy_budgets_name_both_toys(tmp_path):
    proc = run_quality("--toy-iters", "8gaussians=5,swissroll=3", "--out", tmp_path)
    assert proc.returncode != 0 and "unknown toy 'swissroll'" in proc.stderr
    proc = run_quality("--toy-iters", "8gaussians=5", "--out", tmp_path)
    assert proc.returncode != 0 and "no budget for 25gaussians" in proc.stderr


@pytest.mark.parametrize("backend", available_backends())
def test_step_probe_times_every_step(backend):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "probe_steps.py"), "--backend", backend,
                           "--config", "toy-mlp", "--rounds", "1", "--quick"],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(f"{backend} toy-mlp")]
    assert [line.split()[2] for line in lines] == ["critic_step", "generator_step", "iteration"]


def test_data_reading_benchmark_measures_every_variant_and_cleans_up(tmp_path):
    work, out = tmp_path / "work", tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "data_reading.py"), "--sizes", "1000",
                           "--zeros", "2000", "--seconds", "0.2", "--in-memory-max", "1000", "--formats-max", "1000",
                           "--work", str(work),
                           "--json", str(out)], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["n"], r["variant"]) for r in rows] == [
        (1000, "prepared"), (1000, "prefetched"), (1000, "numpy"), (1000, "in-memory"), (1000, "hdf5"),
        (1000, "zip-png"), (2000, "prepared"), (2000, "prefetched"), (2000, "numpy")]
    assert [r["source"] for r in rows] == ["random"] * 6 + ["zeros"] * 3
    assert all(r["images_per_s"] > 0 and 0 < r["rss_anon_open_mb"] <= r["rss_anon_end_mb"] + 1 for r in rows)
    assert "| 1,000 | prepared |" in proc.stdout and not work.exists()

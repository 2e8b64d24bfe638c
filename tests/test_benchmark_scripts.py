"""The scripts in benchmarks/ end to end at toy sizes: quality.py's page, curves and JSON, and the step probe."""
import json
import subprocess
import sys

import pytest

from conftest import REPO, available_backends

SCRIPT = REPO / "benchmarks" / "quality.py"


def run_quality(*args, timeout=600):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


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

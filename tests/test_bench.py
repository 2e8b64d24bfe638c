"""``wganx bench`` runs end to end on tiny sizes and writes well-formed JSON (no timing checks)."""
import importlib.util
import json

import pytest

from wganx import bench
from wganx.cli import parse


def _installed(name):
    return importlib.util.find_spec(name) is not None


def _args(tmp_path, *extra):
    """The options of ``wganx bench --quick ... EXTRA``, parsed by the command itself."""
    return vars(parse("bench", ["--quick", "--json", str(tmp_path / "bench.json"),
                                "--markdown", str(tmp_path / "bench.md"), "--threads", "1", *extra]))


def _check_report(report, backends, configs):
    assert report["schema"] == "wganx-bench/1"
    assert {"machine", "versions", "settings", "load", "configs", "results", "runs"} <= set(report)
    assert len(report["load"]["before"]) == 3 and report["load"]["during"]
    assert report["machine"]["cpu_count"] >= 1
    seen = {(row["backend"], row["config"]) for row in report["results"]}
    assert seen == {(b, c) for b in backends for c in configs}
    for run in report["runs"]:
        assert run["ok"], run.get("error")
        assert run["rates"] and all(r > 0 for r in run["rates"])
        assert run["rss_mib"] > 0
    for row in report["results"]:
        for variant in ("wganx", "plain", "trainer"):
            entry = row["variants"][variant]
            s = entry["its_per_s"]
            assert s["min"] <= s["median"] <= s["max"] and s["n"] >= 1
        assert set(row["ratio"]) == {"wganx", "trainer"}
        for variant in ("wganx", "plain"):
            steps = row["variants"][variant]["critic_step_ms"]
            assert steps["gp"] > 0 and steps["none"] > 0


@pytest.mark.skipif(not _installed("torch"), reason="torch is not installed")
def test_quick_in_process_torch(tmp_path):
    args = _args(tmp_path, "--backend", "torch", "--in-process", "--config", "cifar-m16", "--config", "toy-mlp")
    assert bench.command(**args) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    _check_report(report, ["torch"], ["cifar-m16", "toy-mlp"])
    assert report["settings"]["quick"] and report["settings"]["in_process"]
    table = (tmp_path / "bench.md").read_text()
    assert table.startswith("| backend | config |") and "| torch | cifar-m16 |" in table


@pytest.mark.skipif(not _installed("torch"), reason="torch is not installed")
def test_quick_subprocess_worker(tmp_path):
    """One variant through a real subprocess: the worker protocol and per-run RSS."""
    args = _args(tmp_path, "--backend", "torch", "--config", "toy-mlp", "--variant", "wganx", "--no-penalty")
    assert bench.command(**args) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    (run,) = report["runs"]
    assert run["ok"] and run["variant"] == "wganx" and run["rss_mib"] > 0
    assert "ratio" not in report["results"][0]  # no plain run to divide by


@pytest.mark.parametrize("backend", ["tensorflow", "nnabla"])
def test_quick_other_backends(tmp_path, backend):
    from wganx.plugins import registry

    entry = {e.name: e for e in registry().entries("backend")}.get(backend)
    if entry is None or not entry.availability()[0]:
        pytest.skip(f"backend {backend} is not available")
    # Kept cheap: two variants, no penalty comparison (each traces or builds its own graphs).
    args = _args(tmp_path, "--backend", backend, "--in-process", "--config", "toy-mlp", "--variant", "wganx",
                 "--variant", "plain", "--no-penalty")
    assert bench.command(**args) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    (row,) = report["results"]
    assert row["backend"] == backend and set(row["variants"]) == {"wganx", "plain"}
    assert row["ratio"]["wganx"] > 0 and all(run["ok"] for run in report["runs"])

"""``wganx bench`` runs end to end on tiny sizes and writes well-formed JSON (no timing checks)."""
import importlib.util
import json

import pytest

from wganx_bench import harness as bench
from wganx.cli import parse


def _installed(name):
    return importlib.util.find_spec(name) is not None


def _args(tmp_path, *extra):
    """The options of ``wganx bench --quick ... EXTRA``, parsed by the command itself."""
    return vars(parse("bench", ["--quick", "--json", str(tmp_path / "bench.json"),
                                "--markdown", str(tmp_path / "bench.md"), "--threads", "1", *extra]))


def _check_report(report, backends, configs):
    assert report["schema"] == "wganx-bench/2"
    assert {"machine", "versions", "settings", "load", "configs", "peak", "work", "results", "runs"} <= set(report)
    assert report["peak"]["ok"] and report["peak"]["fp32"] > 1e8  # any CPU does 0.1 GFLOP/s
    assert report["settings"]["threads"] >= 1
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
            assert row["variants"][variant]["penalty_time_share"] is not None
        work = report["work"][row["config"]]
        assert work["ok"] and work["critic_gp"] > work["critic_none"] > 0  # the penalty's double backward
        assert row["gflop_per_iteration"] == work["iteration"] / 1e9
        assert 0 < row["penalty_flop_share"] < 1
        for entry in row["variants"].values():
            rate = entry["its_per_s"]["median"]
            assert entry["gflop_per_s"] == pytest.approx(rate * work["iteration"] / 1e9, rel=1e-12)
            assert entry["share_of_peak"]["fp32"] == pytest.approx(entry["gflop_per_s"] * 1e9 / report["peak"]["fp32"])


@pytest.mark.skipif(not _installed("torch"), reason="torch is not installed")
def test_quick_in_process_torch(tmp_path):
    args = _args(tmp_path, "--backend", "torch", "--in-process", "--config", "cifar-m16", "--config", "toy-mlp")
    assert bench.command(**args) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    _check_report(report, ["torch"], ["cifar-m16", "toy-mlp"])
    assert report["settings"]["quick"] and report["settings"]["in_process"]
    table = (tmp_path / "bench.md").read_text()
    assert table.startswith("| backend | config |") and "| torch | cifar-m16 |" in table
    assert "| GFLOP / iteration |" in table and "share of the fp32 peak" in table


@pytest.mark.skipif(not _installed("torch"), reason="torch is not installed")
def test_quick_subprocess_worker(tmp_path):
    """One variant through a real subprocess: the worker protocol and per-run RSS."""
    args = _args(tmp_path, "--backend", "torch", "--config", "toy-mlp", "--variant", "wganx", "--no-penalty")
    assert bench.command(**args) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    (run,) = report["runs"]
    assert run["ok"] and run["variant"] == "wganx" and run["rss_mib"] > 0
    assert "ratio" not in report["results"][0]  # no plain run to divide by


@pytest.mark.skipif(not _installed("torch"), reason="torch is not installed")
def test_quick_data_parallel_under_torchrun(tmp_path):
    """``--replicas 2``: the data-parallel variant runs under torchrun (2 ranks, each with the
    configuration's batch) and the report gives its scaling efficiency against one replica."""
    args = _args(tmp_path, "--backend", "torch", "--config", "toy-mlp", "--variant", "wganx", "--no-penalty",
                 "--replicas", "2")
    assert bench.command(**args) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    runs = {run["variant"]: run for run in report["runs"]}
    assert set(runs) == {"wganx", "data-parallel"} and runs["data-parallel"]["replicas"] == 2
    (row,) = report["results"]
    med = {v: e["its_per_s"]["median"] for v, e in row["variants"].items()}
    assert row["scaling"] == {"replicas": 2, "efficiency": pytest.approx(med["data-parallel"] / med["wganx"])}
    table = (tmp_path / "bench.md").read_text()
    assert "| scaling efficiency |" in table and "| torch | toy-mlp | 2 |" in table


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


@pytest.mark.skipif(not _installed("torch"), reason="torch is not installed")
def test_flop_counter_agrees_with_torch_and_counts_the_double_backward():
    """Against torch's own FlopCounterMode where that one works (backward()), and by hand for
    a matrix product; under autograd.grad(create_graph=True), where FlopCounterMode raises,
    the penalty's double backward adds the work of its products."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from wganx_bench.flops import FlopCounter

    torch.manual_seed(0)
    conv, lin = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Linear(4 * 8 * 8, 1)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)

    def critic(v):
        return lin(torch.nn.functional.leaky_relu(conv(v), 0.2).flatten(1)).sum()

    with FlopCounterMode(display=False) as theirs:
        critic(x).backward()
    with FlopCounter() as ours:
        critic(x).backward()
    assert ours.total == theirs.get_total_flops() > 0

    with FlopCounter() as product:
        torch.ones(5, 3) @ torch.ones(3, 7)
    assert product.total == 2 * 5 * 3 * 7 and product.by_op == {"mm": 210}

    with FlopCounter() as penalised:
        (g,) = torch.autograd.grad(critic(x), x, create_graph=True)
        g.square().sum().backward()
    assert penalised.total > ours.total

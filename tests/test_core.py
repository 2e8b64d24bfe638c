"""The core without any framework: imports, plugin loading, configuration, checkpoints."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import wganx
from wganx import checkpoint
from wganx.config import TrainConfig, load_toml
from wganx.errors import PluginConflictError, UnknownNameError, WganxError
from wganx.optim import OptimizerConfig, reference_update
from wganx.plugins import PluginLoadWarning, Registry
from wganx.records import LossSpec

from conftest import available_backends, run_cli

FRAMEWORKS = ("torch", "tensorflow", "nnabla")


def _python(code, without=(), **env):
    """Run ``code`` in a fresh interpreter with ``env`` added and the variables ``without`` unset."""
    import os

    env = {k: v for k, v in dict(os.environ, **env).items() if k not in without}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_import_and_listing_pull_in_no_framework_and_change_no_environment_variable():
    out = _python("""
        import os, sys, json
        before = dict(os.environ)
        import wganx
        wganx.registry().entries()
        wganx.registry().get("architecture", "nnabla-cifar")
        changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
        print(json.dumps({"loaded": [m for m in ("torch", "tensorflow", "nnabla", "google.protobuf")
                                     if m in sys.modules], "changed": changed}))
    """)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"loaded": [], "changed": []}


def test_backends_choose_pure_python_protobuf_only_for_protobuf_3():
    """protobuf 3's C++ implementation breaks TensorFlow; newer ones are left as they are."""
    import importlib.metadata

    names = [e.name for e in wganx.registry().entries("backend") if e.availability()[0]]
    if not names:
        pytest.skip("no backend installed")
    try:
        protobuf = importlib.metadata.version("protobuf")
    except importlib.metadata.PackageNotFoundError:
        protobuf = None
    for name in names:
        out = _python(f"""
            import os, wganx
            from wganx.build import load_backend
            load_backend({name!r})
            print(os.environ.get("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"))
        """, without=["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"])
        assert out.returncode == 0, out.stderr
        needs = protobuf is not None and protobuf.startswith("3.") and name in ("tensorflow", "nnabla")
        assert out.stdout.strip() == ("python" if needs else "None"), (name, protobuf)


def core_imports() -> dict:
    """Module -> the core modules it imports, at the top or inside a function (an import in a
    function hides a cycle from Python, not from a reader)."""
    import ast
    from pathlib import Path

    core = Path(wganx.__file__).parent
    names = {p.stem for p in core.glob("*.py")}
    graph = {}
    for path in core.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("wganx")):
                module = (node.module or "").split(".")
                if node.level == 0:
                    module = module[1:]
                deps.update([module[0]] if module and module[0] else [a.name for a in node.names])
        graph[path.stem] = {d for d in deps if d in names and d != path.stem}
    return graph


def test_the_core_has_no_import_cycle():
    graph, done, path = core_imports(), set(), []

    def visit(module):
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        path.append(module)
        for dep in sorted(graph[module]):
            visit(dep)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert "algorithm" in graph and graph["gan"] >= {"build"}


def test_required_backends_present(backends):
    """CI sets WGANX_REQUIRE_BACKENDS so that a backend cannot silently disappear."""
    import os

    required = [b for b in os.environ.get("WGANX_REQUIRE_BACKENDS", "").split(",") if b]
    missing = sorted(set(required) - set(backends))
    assert not missing, f"required backends unavailable: {missing}"


# -- plugins ----------------------------------------------------------------------------------
def _write_distribution(site, dist, module, source, entry_name="plug"):
    """A real installed distribution: a module plus its .dist-info with an entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[wganx]\n{entry_name} = {module}\n")


LOSS_PLUGIN = """
    from wganx import hookimpl
    from wganx.records import LossSpec
    @hookimpl
    def wganx_losses():
        return [LossSpec({name!r}, critic=lambda ops, r, f: ops.mean(f) - ops.mean(r),
                         generator=lambda ops, f: -ops.mean(f), description="test")]
"""


def _listing(site, strict=False):
    env = {"PYTHONPATH": str(site)}
    if strict:
        env["WGANX_STRICT_PLUGINS"] = "1"
    return run_cli("plugins", "--json", env=env)


def test_broken_plugin_is_skipped_with_a_warning_naming_its_distribution(tmp_path):
    _write_distribution(tmp_path, "broken-wganx-plugin", "broken_plugin", "raise ImportError('boom')")
    _write_distribution(tmp_path, "good-wganx-plugin", "good_plugin", LOSS_PLUGIN.format(name="good-loss"))
    out = _listing(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "broken-wganx-plugin" in out.stderr and "boom" in out.stderr
    rows = json.loads(out.stdout)
    assert {"kind": "loss", "name": "good-loss", "package": "good-wganx-plugin"}.items() <= \
        next(r for r in rows if r["name"] == "good-loss").items()
    assert any(r["name"] == "nnabla-cifar" for r in rows)  # everything else still works
    failed = next(r for r in rows if r["package"] == "broken-wganx-plugin")
    assert not failed["available"] and "boom" in failed["reason"]
    strict = _listing(tmp_path, strict=True)
    assert strict.returncode != 0 and "boom" in strict.stderr


def test_two_plugins_claiming_one_name_is_an_error_naming_both_for_that_name_only(tmp_path):
    _write_distribution(tmp_path, "first-plugin", "first_plugin", LOSS_PLUGIN.format(name="same"))
    _write_distribution(tmp_path, "second-plugin", "second_plugin", LOSS_PLUGIN.format(name="same"))
    out = _listing(tmp_path)  # wganx plugins still lists everything, the conflict included
    assert out.returncode == 0, out.stderr
    rows = [r for r in json.loads(out.stdout) if r["name"] == "same"]
    assert sorted(r["package"] for r in rows) == ["first-plugin", "second-plugin"]
    assert all(not r["available"] and "conflict" in r["reason"] for r in rows)
    env = {"PYTHONPATH": str(tmp_path)}
    used = run_cli("train", "--loss", "same", "-i", "1", "--monitor-path", tmp_path / "run", env=env)
    assert used.returncode == 2 and "first-plugin" in used.stderr and "second-plugin" in used.stderr
    assert "WGANX_DISABLE_PLUGINS" in used.stderr and len(used.stderr.strip().splitlines()) == 1, used.stderr
    assert "first-plugin:same or second-plugin:same" in used.stderr or \
        "second-plugin:same or first-plugin:same" in used.stderr  # in the order the plugins loaded
    chosen = run_cli("train", "--loss", "second-plugin:same", "--dataset", "8gaussians", "--maps", "8", "-b", "16",
                     "-i", "1", "--no-progress", "--monitor-path", tmp_path / "chosen", env=env)
    assert chosen.returncode == 0, chosen.stderr[-2000:]  # the distribution's name picks one side
    assert json.loads((tmp_path / "chosen" / "config.json").read_text())["config"]["loss"] == "second-plugin:same"
    other = run_cli("train", "--dataset", "8gaussians", "--maps", "8", "-b", "16", "-i", "1", "--no-progress",
                    "--monitor-path", tmp_path / "other", env=env)
    assert other.returncode == 0, other.stderr[-2000:]  # other commands keep working
    off = run_cli("plugins", "--json", env=dict(env, WGANX_DISABLE_PLUGINS="second-plugin"))
    rows = [r for r in json.loads(off.stdout) if r["name"] == "same"]
    assert [(r["package"], r["available"]) for r in rows] == [("first-plugin", True)]
    strict = _listing(tmp_path, strict=True)
    assert strict.returncode != 0 and "second-plugin" in strict.stderr


def test_conflict_with_a_builtin_in_process():
    class Clash:
        @wganx.hookimpl
        def wganx_losses(self):
            return [LossSpec("wasserstein", lambda *a: None, lambda *a: None)]

    reg = Registry.from_plugins([Clash()])
    with pytest.raises(PluginConflictError, match="wganx.*in-process|in-process.*wganx"):
        reg.get("loss", "wasserstein")
    assert reg.get("loss", "nonsaturating")
    builtin, clash = reg.get("loss", "wganx:wasserstein"), reg.get("loss", "<in-process>:wasserstein")
    assert builtin is not clash and clash.generator(None) is None and reg.get("loss", "wganx:nonsaturating")
    with pytest.raises(UnknownNameError, match=r"'nobody:wasserstein'; choose one of: <in-process>:wasserstein, "
                                               r"wganx:wasserstein$"):
        reg.get("loss", "nobody:wasserstein")


def test_plugin_raising_inside_a_hook_is_skipped():
    class Faulty:
        @wganx.hookimpl
        def wganx_losses(self):
            raise RuntimeError("hook failed")

    with pytest.warns(PluginLoadWarning, match="hook failed"):
        reg = Registry.from_plugins([Faulty()])
    assert "wasserstein" in reg.names("loss")


def test_unknown_names_list_the_choices():
    reg = wganx.registry()
    with pytest.raises(UnknownNameError) as info:
        reg.get("architecture", "transformer")
    message = str(info.value)
    assert "transformer" in message and all(n in message for n in ("dcgan", "mlp", "nnabla-cifar", "resnet"))
    with pytest.raises(UnknownNameError, match="choose one of"):
        reg.get("flavour", "x")


def test_plugins_command_lists_every_kind_with_packages():
    out = run_cli("plugins", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    kinds = {r["kind"] for r in rows}
    assert {"backend", "architecture", "upsampler", "regularizer", "loss", "dataset", "metric"} <= kinds
    for row in rows:
        assert {"kind", "name", "package", "available"} <= set(row)
    backends = {r["name"]: r for r in rows if r["kind"] == "backend"}
    for name in available_backends():
        assert backends[name]["available"] and backends[name]["package"] == f"wganx-{name}"
    text = run_cli("plugins")
    assert "nnabla-cifar" in text.stdout and "wganx-torch" in text.stdout


def test_unavailable_backend_says_what_to_install(tmp_path):
    _write_distribution(tmp_path, "wganx-imaginary", "imaginary_plugin", """
        from wganx import hookimpl
        from wganx.records import BackendSpec
        @hookimpl
        def wganx_backends():
            return [BackendSpec("imaginary", "imaginary_backend:Backend", requires=("imaginary_framework",),
                                install_hint="pip install imaginary-framework")]
    """)
    rows = json.loads(_listing(tmp_path).stdout)
    row = next(r for r in rows if r["name"] == "imaginary")
    assert row["available"] is False and "imaginary_framework is not installed" in row["reason"]
    out = run_cli("train", "--backend", "imaginary", "--dataset", "8gaussians", "--arch", "mlp", "-i", "1",
                  "--monitor-path", tmp_path / "run", env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 2 and "pip install imaginary-framework" in out.stderr
    assert "Traceback" not in out.stderr


# -- configuration ----------------------------------------------------------------------------
def test_toml_config_and_flag_precedence(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('batch-size = 16\nlambda = 5.0\nn_critic = 3\n')
    values = load_toml(str(path))
    assert values == {"batch_size": 16, "lambda_": 5.0, "n_critic": 3}
    (tmp_path / "bad.toml").write_text("batch = 3\n")
    with pytest.raises(WganxError, match=r"unknown setting 'batch'; did you mean 'batch_size'\?"):
        load_toml(str(tmp_path / "bad.toml"))


def test_wgan_recipe_is_one_flag_away():
    config = TrainConfig(recipe="wgan").apply_recipe(explicit={"recipe"})
    assert (config.regularizer, config.optimizer, config.lrd, config.lrg, config.critic_schedule) == \
        ("clip", "rmsprop", 5e-5, 5e-5, "wgan")
    kept = TrainConfig(recipe="wgan", lrd=1e-3).apply_recipe(explicit={"recipe", "lrd"})
    assert kept.lrd == 1e-3 and kept.lrg == 5e-5


def test_original_wgan_critic_schedule():
    from wganx.algorithm import critic_steps

    assert [critic_steps("wgan", 5, i) for i in (0, 24, 25, 499, 500, 501, 1000)] == [100, 100, 5, 5, 100, 5, 100]
    assert critic_steps("constant", 5, 0) == 5


# -- optimizers: the reference formulas ---------------------------------------------------------
def test_linear_lr_decay_reaches_zero_at_the_last_iteration():
    from wganx.algorithm import learning_rate
    from wganx.build import make_program
    from wganx.records import ArchConfig

    config = ArchConfig(data_kind="points", latent=2, maps=4)
    program = make_program(arch="mlp", arch_config=config, lr_decay="linear", decay_iters=4,
                           critic_optimizer=OptimizerConfig("adam", lr=2e-4))
    assert [learning_rate(program, "critic", i) for i in range(6)] == pytest.approx([2e-4, 1.5e-4, 1e-4, 5e-5, 0, 0])
    assert learning_rate(program, "generator", 2) == pytest.approx(0.5e-4)  # the generator's own rate
    assert learning_rate(make_program(arch="mlp", arch_config=config), "critic", 10 ** 6) == 1e-4
    with pytest.raises(WganxError, match="needs its length in iterations"):
        make_program(arch="mlp", arch_config=config, lr_decay="linear")


def test_adam_reference_matches_the_textbook_bias_corrected_form():
    cfg = OptimizerConfig("adam", lr=0.01, beta1=0.5, beta2=0.9, eps=0.0)
    rng = np.random.default_rng(0)
    p = rng.standard_normal(5)
    slots = {"m": np.zeros(5), "v": np.zeros(5)}
    m = v = np.zeros(5)
    q = p.copy()
    for t in range(1, 4):
        g = rng.standard_normal(5)
        p = reference_update(p, g, slots, t, cfg)
        m = 0.5 * m + 0.5 * g
        v = 0.9 * v + 0.1 * g * g
        q = q - 0.01 * (m / (1 - 0.5 ** t)) / np.sqrt(v / (1 - 0.9 ** t))
    np.testing.assert_allclose(p, q, rtol=1e-12)


# -- checkpoints ------------------------------------------------------------------------------
def test_checkpoint_roundtrip_and_atomicity(tmp_path):
    arrays = {"generator/W": np.arange(6, dtype=np.float32).reshape(2, 3)}
    written = {"iteration": 1, "config": {}, "sample_shape": [2], "data_kind": "points", "num_classes": 0}
    path = checkpoint.save(tmp_path / "params_000001.safetensors", arrays, written)
    loaded, meta = checkpoint.load(path)
    np.testing.assert_array_equal(loaded["generator/W"], arrays["generator/W"])
    assert meta == dict(written, meaning=checkpoint.MEANING)

    def crash(tmp):
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_write(path, crash)
    assert checkpoint.load(path)[1]["iteration"] == 1  # the old one is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params_000001.safetensors"]
    assert checkpoint.latest(tmp_path) == path


def test_checkpoint_errors_are_clear(tmp_path):
    bad = tmp_path / "params_000002.safetensors"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(WganxError, match="not a readable checkpoint"):
        checkpoint.load(bad)
    with pytest.raises(WganxError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.safetensors")
    with pytest.raises(WganxError, match="another architecture"):
        checkpoint.check_compatible({}, {"critic/W": (2,)}, bad)


def test_python_dash_m_and_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"wganx {wganx.__version__}"


def test_standard_backend_not_installed_says_what_to_install():
    reg = Registry.from_plugins([], entry_points=False)
    from wganx.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="pip install wganx-nnabla.*Python 3.8 to 3.10"):
        reg.entry("backend", "nnabla")
    assert set(reg.missing_standard_backends()) == {"torch", "tensorflow", "nnabla"}
    assert not set(wganx.registry().missing_standard_backends()) & set(available_backends())

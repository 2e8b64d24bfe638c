"""Plugin loading (:mod:`wganx.plugins`): distributions found through entry points, broken and
conflicting plugins, unknown names, ``wganx plugins``."""
import json
import textwrap

import pytest

import wganx
from wganx.errors import PluginConflictError, UnknownNameError
from wganx.plugins import PluginLoadWarning, Registry
from wganx.records import LossSpec

from conftest import available_backends, run_cli


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


def test_standard_backend_not_installed_says_what_to_install():
    reg = Registry.from_plugins([], entry_points=False)
    from wganx.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="pip install wganx-nnabla.*Python 3.8 to 3.10"):
        reg.entry("backend", "nnabla")
    assert set(reg.missing_standard_backends()) == {"torch", "tensorflow", "nnabla"}
    assert not set(wganx.registry().missing_standard_backends()) & set(available_backends())

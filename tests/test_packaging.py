"""Every distribution builds an sdist and a wheel, and the wheels work when installed for real.

How, without the network and without downloading the frameworks again:

1. The source tree is copied to a temporary folder (without the ``.venv*`` environments, build outputs and
   stale ``*.egg-info``, which could otherwise leak files into an sdist), and each
   distribution with a ``pyproject.toml`` (``wganx``, ``backends/*``, ``plugins/example``,
   ``benchmarks``) is
   built with ``python -m build --no-isolation``: the sdist first, then the wheel *from the
   sdist*, so a file missing from the sdist breaks the wheel build too.
2. A fresh virtual environment is created (``--without-pip``; the project's pip installs
   into it with ``pip --python``). The wheels go in with ``--no-deps --no-index``.
3. The third-party dependencies (numpy, pluggy, torch, ...) are not downloaded: a ``.pth``
   file in the fresh environment appends a "shim" folder of symlinks to the project
   environment's installed packages -- every one *except* wganx's own distributions, their
   editable-install finders and ``.pth`` hooks. So ``wganx``, ``wganx_plugins``,
   ``wganx_torch`` and ``wganx_example`` can only come from the installed wheels, and entry
   points only from the wheels' metadata; the test asserts both.
4. From a temporary working directory (so the source tree is not importable): ``python -m
   wganx --version``, ``wganx plugins --json`` and a tiny ``wganx train`` on the 2-D toy data.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

import wganx

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DISTS = {  # folder -> (distribution name, top-level packages its wheel must contain)
    ".": ("wganx", ("wganx", "wganx_plugins")),
    "backends/torch": ("wganx-torch", ("wganx_torch",)),
    "backends/tensorflow": ("wganx-tensorflow", ("wganx_tensorflow",)),
    "backends/nnabla": ("wganx-nnabla", ("wganx_nnabla",)),
    "plugins/example": ("wganx-example-plugin", ("wganx_example",)),
    "benchmarks": ("wganx-bench", ("wganx_bench", "wganx_bench/reference")),
}
OURS = ("wganx", "wganx_plugins", "wganx_torch", "wganx_tensorflow", "wganx_nnabla", "wganx_example", "wganx_bench")
IGNORE = shutil.ignore_patterns(".venv*", ".git", "_build", "_generated", "build", "dist", "*.egg-info",
                                "__pycache__", ".pytest_cache", "result", "shared")


def _present():
    return {folder: info for folder, info in DISTS.items() if (ROOT / folder / "pyproject.toml").is_file()}


def _run(cmd, **kw):
    kw.setdefault("timeout", 600)
    run = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert run.returncode == 0, f"{' '.join(map(str, cmd))} failed ({run.returncode}):\n" \
                                f"{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``{folder: (sdist, wheel)}`` built from a clean copy of the source tree."""
    tmp = tmp_path_factory.mktemp("packaging")
    src, out = tmp / "src", tmp / "dist"
    shutil.copytree(ROOT, src, ignore=IGNORE, symlinks=True)
    result = {}
    for folder, (dist, _) in _present().items():
        target = out / dist
        _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", target, src / folder])
        sdists, wheels = list(target.glob("*.tar.gz")), list(target.glob("*.whl"))
        assert len(sdists) == 1 and len(wheels) == 1, (dist, sorted(p.name for p in target.iterdir()))
        result[folder] = (sdists[0], wheels[0])
    return result


def test_every_distribution_builds(built):
    assert {".", "backends/torch", "plugins/example", "benchmarks"} <= set(built)
    for folder, (sdist, wheel) in built.items():
        dist, packages = DISTS[folder]
        stem = dist.replace("-", "_")
        assert wheel.name.startswith(f"{stem}-{wganx.__version__}-") and wheel.name.endswith("-py3-none-any.whl")
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
        for package in packages:
            assert f"{package}/__init__.py" in names, (wheel.name, package)
        assert not any(n.startswith(("tests/", "docs/", "benchmarks/", "results/")) for n in names), wheel.name
        info = f"{stem}-{wganx.__version__}.dist-info"
        entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
        assert "[wganx]" in entry_points, wheel.name
        with tarfile.open(sdist) as tf:
            members = tf.getnames()
        assert any(m.endswith("/pyproject.toml") for m in members), sdist.name


def test_core_wheel_contents(built):
    _, wheel = built["."]
    zf = zipfile.ZipFile(wheel)
    names = zf.namelist()
    info = f"wganx-{wganx.__version__}.dist-info"
    for module in ("wganx/cli.py", "wganx/testing.py", "wganx/__main__.py", "wganx_plugins/datasets/__init__.py",
                   "wganx_plugins/metrics/__init__.py", "wganx_plugins/regularizers.py",
                   "wganx_plugins/datasets/prepared.py"):
        assert module in names, module
    assert any(n.startswith(f"{info}/licenses/LICENSE") or n == f"{info}/LICENSE" for n in names), \
        "LICENSE missing from the wheel"
    entry_points = zf.read(f"{info}/entry_points.txt").decode()
    assert "wganx = wganx.cli:main" in entry_points and "wganx = wganx.testing" in entry_points


def _installable(wheel: Path) -> bool:
    """Whether the wheel's ``Requires-Python`` admits this interpreter (wganx-nnabla: 3.10 only)."""
    from email.parser import Parser

    from packaging.specifiers import SpecifierSet

    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        requires = Parser().parsestr(z.read(name).decode()).get("Requires-Python", "")
    return SpecifierSet(requires).contains(".".join(map(str, sys.version_info[:3])))


@pytest.fixture(scope="module")
def venv(built, tmp_path_factory):
    """A fresh environment with the wheels installed and the frameworks borrowed read-only."""
    tmp = tmp_path_factory.mktemp("venv")
    env_dir = tmp / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir])
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # The shim: the project environment's packages minus wganx's own distributions and hooks.
    shim = tmp / "shim"
    shim.mkdir()
    project_site = Path(sysconfig.get_paths()["purelib"])
    for entry in project_site.iterdir():
        name = entry.name.lower()
        if name.startswith(("wganx", "__editable__", "pip", "setuptools", "_distutils_hack", "pkg_resources",
                            "__pycache__")) or name.endswith((".pth", ".egg-link")):
            continue
        (shim / entry.name).symlink_to(entry)
    (site / "zz_wganx_test_shim.pth").write_text(f"{shim}\n")
    wheels = [wheel for _, wheel in built.values() if _installable(wheel)]
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
          "--no-compile", "--disable-pip-version-check", *wheels])
    scripts = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['scripts'])"]).stdout.strip())
    return python, scripts, env_dir


def _in_venv(venv, args, cwd, timeout=600):
    python, scripts, _ = venv
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{scripts}{os.pathsep}{env.get('PATH', '')}", PYTHONWARNINGS="ignore",
               WGANX_STRICT_PLUGINS="1", PYTHONNOUSERSITE="1")
    return _run(args, cwd=cwd, env=env, timeout=timeout)


def test_installed_modules_come_from_the_wheels(venv, tmp_path):
    python, _, env_dir = venv
    code = ("import json, importlib, importlib.metadata as md\n"
            f"mods = {[m for m in OURS]!r}\n"
            "out = {}\n"
            "for m in mods:\n"
            "    try:\n"
            "        out[m] = importlib.import_module(m).__file__\n"
            "    except ImportError:\n"
            "        out[m] = None\n"
            "out['dists'] = sorted({d.metadata['Name'] for d in md.distributions() if d.metadata['Name'].startswith('wganx')})\n"
            "print(json.dumps(out))\n")
    found = json.loads(_in_venv(venv, [python, "-c", code], cwd=tmp_path).stdout)
    dists = found.pop("dists")
    assert {"wganx", "wganx-torch", "wganx-example-plugin"} <= set(dists)
    for module, path in found.items():
        if path is not None:
            assert Path(path).resolve().is_relative_to(env_dir.resolve()), (module, path)
    assert found["wganx"] and found["wganx_plugins"] and found["wganx_torch"] and found["wganx_example"]


def test_version(venv, tmp_path):
    python = venv[0]
    run = _in_venv(venv, [python, "-m", "wganx", "--version"], cwd=tmp_path)
    assert run.stdout.strip() == f"wganx {wganx.__version__}"


def test_plugins_lists_builtins_and_the_example_from_the_wheels(venv, tmp_path):
    run = _in_venv(venv, ["wganx", "plugins", "--json"], cwd=tmp_path)
    rows = {(r["kind"], r["name"]): r for r in json.loads(run.stdout)}
    assert rows[("backend", "torch")]["package"] == "wganx-torch" and rows[("backend", "torch")]["available"]
    for kind, name in (("architecture", "nnabla-cifar"), ("regularizer", "gp"), ("dataset", "8gaussians"),
                       ("upsampler", "linear"), ("loss", "wasserstein"), ("metric", "fid")):
        assert rows[(kind, name)]["package"] == "wganx", (kind, name)
    assert rows[("architecture", "conv-small")]["package"] == "wganx-example-plugin"
    assert rows[("regularizer", "gp-onesided")]["package"] == "wganx-example-plugin"
    text = _in_venv(venv, ["wganx", "plugins"], cwd=tmp_path).stdout
    assert "wganx-example-plugin" in text and "nnabla-cifar" in text


def test_tiny_training_run(venv, tmp_path):
    out = tmp_path / "run"
    run = _in_venv(venv, ["wganx", "train", "--backend", "torch", "--dataset", "8gaussians", "--arch", "mlp",
                          "-i", "2", "-b", "16", "--maps", "16", "--latent", "4", "--save-interval", "2",
                          "--monitor-path", out, "--no-progress"], cwd=tmp_path)
    assert "finished at iteration 2" in run.stdout, run.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["arch"] == "mlp" and list(out.glob("params_*.safetensors"))


def test_every_command_runs_from_the_wheels(venv, tmp_path):
    """What the wheels offer works without the source tree: generate and evaluate a checkpoint,
    a parity case, a plugin's command and ``wganx bench`` with its plain loops (shipped in
    ``wganx-bench``, not looked up in a checkout)."""
    run = tmp_path / "run"
    _in_venv(venv, ["wganx", "train", "--backend", "torch", "--dataset", "8gaussians", "--arch", "mlp", "-i", "2",
                    "-b", "16", "--maps", "16", "--latent", "4", "--save-interval", "2", "--monitor-path", run,
                    "--no-progress"], cwd=tmp_path)
    checkpoint = run / "params_000002.safetensors"
    _in_venv(venv, ["wganx", "generate", "--model-load-path", checkpoint, "--monitor-path", tmp_path / "gen",
                    "--num-images", "16"], cwd=tmp_path)
    assert (tmp_path / "gen" / "samples.npz").is_file()
    evaluated = _in_venv(venv, ["wganx", "evaluate", "--model-load-path", checkpoint, "--num-samples", "64",
                                "--json"], cwd=tmp_path)
    assert "modes" in evaluated.stdout
    _in_venv(venv, ["wganx", "parity", "--backend", "torch", "--case", "mlp/gp/wasserstein/points"], cwd=tmp_path)
    assert "generator" in _in_venv(venv, ["wganx", "conv-small-shapes"], cwd=tmp_path).stdout
    images = tmp_path / "images"  # prepare's worker processes start from the installed wheel too
    images.mkdir()
    for i in range(3):
        Image.new("RGB", (10 + i, 12), (i, 2 * i, 3 * i)).save(images / f"{i}.png")
    _in_venv(venv, ["wganx", "data", "prepare", images, "-o", tmp_path / "prepared", "--image-size", "8",
                    "--workers", "2", "--no-progress"], cwd=tmp_path)
    assert "intact, 3 image samples of 3x8x8" in _in_venv(venv, ["wganx", "data", "check", tmp_path / "prepared"],
                                                           cwd=tmp_path).stdout
    report = tmp_path / "bench.json"
    _in_venv(venv, ["wganx", "bench", "--quick", "--backend", "torch", "--config", "toy-mlp", "--variant", "wganx",
                    "--variant", "plain", "--no-penalty", "--threads", "1", "--json", report], cwd=tmp_path)
    runs = json.loads(report.read_text())["runs"]
    assert {r["variant"] for r in runs if r["ok"]} >= {"wganx", "plain"}, runs

"""The documentation builds warning-free (``-W``), its examples pass as doctests, the CLI
reference is generated from the parser itself, and the release files are in place."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import wganx
from wganx.cli import command
from wganx.config import SECTIONS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NEEDED = {"sphinx": "sphinx", "furo": "furo", "myst_parser": "myst-parser", "myst_nb": "myst-nb"}


def _require_docs_tools():
    missing = [dist for module, dist in NEEDED.items() if importlib.util.find_spec(module) is None]
    if missing:
        pytest.fail(f"documentation tools missing: {', '.join(missing)}; run: "
                    f"{sys.executable} -m pip install -e '{ROOT}[docs]'", pytrace=False)


def _sphinx(builder: str, out: Path, env=None) -> subprocess.CompletedProcess:
    """``sphinx -W -b builder``; the tutorial notebook is not executed (test_notebook.py runs it)."""
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", builder,
           "-d", str(out / "doctrees"), str(DOCS), str(out / builder)]
    env = {**(env if env is not None else os.environ), "WGANX_NOTEBOOK_EXECUTION": "off"}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def _warnings(run: subprocess.CompletedProcess) -> str:
    # TensorFlow's and XLA's start-up chatter is not a Sphinx warning.
    lines = [ln for ln in run.stderr.splitlines() if "WARNING" in ln or "ERROR" in ln
             or "Warning, treated as error" in ln]
    return "\n".join(lines) or run.stderr[-3000:]


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    _require_docs_tools()
    out = tmp_path_factory.mktemp("docs")
    run = _sphinx("html", out)
    assert run.returncode == 0, f"sphinx -W -b html failed:\n{_warnings(run)}"
    return out / "html"


@pytest.mark.slow
def test_html_builds_without_warnings(html):
    for page in ("index", "quickstart", "tutorial", "concepts", "numerics", "cli", "scaling", "guarantees", "api", "writing-plugins",
                 "writing-backends", "results", "changelog"):
        assert (html / f"{page}.html").is_file(), page


@pytest.mark.slow
def test_cli_reference_is_generated_from_the_app(html):
    text = (html / "cli.html").read_text()
    group = command("")
    assert {"train", "generate", "evaluate", "plugins", "parity", "import", "export", "bench"} <= set(group.commands)
    for name, cmd in group.commands.items():
        assert f'id="wganx-{name}"' in text, name
        for param in cmd.params:
            for flag in [*param.opts, *getattr(param, "secondary_opts", [])]:
                if flag.startswith("-"):
                    assert flag in text, f"wganx {name} {flag} missing from the CLI reference"
    for panel in SECTIONS:  # train's help panels
        assert f"<strong>{panel}</strong>" in text, panel


@pytest.mark.slow
def test_api_reference_covers_the_contract(html):
    text = (html / "api.html").read_text()
    for name in ("wganx.hookspecs.wganx_regularizers", "wganx.records.RegularizerSpec",
                 "wganx.ops.Ops.input_grad", "wganx.session.Session.critic_step",
                 "wganx.config.TrainConfig", "wganx.algorithm.critic_objective",
                 "wganx.parity.default_cases", "wganx.testing.assert_parity", "wganx.api.train",
                 "wganx.api.TrainResult", "wganx.api.GAN.sample", "wganx.api.GAN.critic", "wganx.api.evaluate"):
        assert f'id="{name}"' in text, name


def test_every_name_the_api_reference_documents_imports():
    """docs/api.rst is where the public API is declared: each module it documents imports, and so
    does each member it names, so a move without a shim fails here, not in a plugin's tests."""
    import importlib

    text = (DOCS / "api.rst").read_text()
    documented = re.findall(r"^\.\. automodule:: (\S+)\n((?:   :\S+:.*\n(?: {13,}.*\n)*)*)", text, re.M)
    assert len(documented) >= 15
    for module, options in documented:
        imported = importlib.import_module(module)
        members = re.search(r":members: ((?:.*\n)(?: {13,}.*\n)*)", options)
        for name in re.findall(r"[A-Za-z_]\w*", members.group(1)) if members else ():
            assert hasattr(imported, name), f"{module}.{name}"
    for dotted in re.findall(r"^\.\. data:: (\S+)", text, re.M):
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted


@pytest.mark.slow
def test_doc_examples_pass_as_doctests(tmp_path):
    _require_docs_tools()
    run = _sphinx("doctest", tmp_path)
    output = (tmp_path / "doctest" / "output.txt")
    report = output.read_text() if output.exists() else ""
    assert run.returncode == 0, f"sphinx -b doctest failed:\n{report[-4000:]}\n{_warnings(run)}"
    total = re.search(r"^\s*(\d+) tests\s*$", report, re.M)
    assert total and int(total.group(1)) >= 20, report[-2000:]
    assert "0 failures in tests" in report


HINGE_PLUGIN = """
import wganx
from wganx.records import LossSpec


@wganx.hookimpl
def wganx_losses():
    critic = lambda ops, r, f: ops.mean(ops.relu(1.0 - r)) + ops.mean(ops.relu(1.0 + f))
    return [LossSpec(name, critic=critic, generator=lambda ops, f: -ops.mean(f)) for name in ("hinge", "hinge-demo")]
"""


@pytest.mark.slow
def test_doctests_pass_beside_a_third_party_plugin_of_the_same_names(tmp_path):
    """A user who installed a plugin called ``hinge`` (the tutorial's example name) can still
    run the project's doctests: each registers its examples in a registry of its own."""
    _require_docs_tools()
    site = tmp_path / "site"
    (site / "hinge_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "hinge_plugin.py").write_text(HINGE_PLUGIN)
    (site / "hinge_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: hinge-plugin\n"
                                                                  "Version: 0.1\n")
    (site / "hinge_plugin-0.1.dist-info" / "entry_points.txt").write_text("[wganx]\nhinge = hinge_plugin\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    seen = subprocess.run([sys.executable, "-c", "import wganx; print(wganx.registry().entry('loss', 'hinge').package)"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert seen.stdout.strip() == "hinge-plugin", seen.stderr
    run = _sphinx("doctest", tmp_path, env=env)
    report = (tmp_path / "doctest" / "output.txt")
    assert run.returncode == 0, (report.read_text()[-3000:] if report.exists() else "") + _warnings(run)


def test_changelog_has_this_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(wganx.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.M)


def test_license_is_apache_2():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text

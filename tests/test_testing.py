"""wganx.testing: the pytest plugin third-party plugin authors test with. Driven through
pytest itself (``pytester``), as a plugin's own test run loads it from the entry point."""
import re
import subprocess
import sys

import pytest

from conftest import available_backends

pytest_plugins = ["pytester"]

BACKENDS = available_backends()
PROBE = """
def test_one(wganx_backend):
    print("ONE", wganx_backend)

def test_all(wganx_backends, wganx_registry):
    assert set(wganx_registry.names("backend")) >= set(wganx_backends)
    print("ALL", ",".join(wganx_backends))
"""


def outputs(result, tag):
    """What the probe's tests printed after ``tag`` (-s: between pytest's own dots)."""
    return re.findall(rf"{tag} (\S+)", result.stdout.str())


@pytest.mark.skipif(not BACKENDS, reason="no backend installed")
def test_a_test_runs_once_per_available_backend(pytester):
    pytester.makepyfile(PROBE)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(BACKENDS) + 1)
    assert outputs(result, "ONE") == BACKENDS and outputs(result, "ALL") == [",".join(BACKENDS)]


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs two backends")
def test_the_option_and_the_variable_choose_backends(pytester, monkeypatch):
    pytester.makepyfile(PROBE)
    chosen = pytester.runpytest_subprocess("-s", f"--wganx-backends={BACKENDS[-1]}")
    chosen.assert_outcomes(passed=2)
    assert outputs(chosen, "ONE") == [BACKENDS[-1]]
    monkeypatch.setenv("WGANX_TEST_BACKENDS", BACKENDS[0])
    assert outputs(pytester.runpytest_subprocess("-s"), "ONE") == [BACKENDS[0]]


def test_an_unavailable_backend_is_a_usage_error_naming_the_available(pytester):
    pytester.makepyfile(PROBE)
    result = pytester.runpytest_subprocess("--wganx-backends=nosuch")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # at collection, before any test runs
    result.stdout.fnmatch_lines([f"*backend(s) nosuch not available; available: {', '.join(BACKENDS) or '(none)'}*"])


def test_loading_the_plugin_imports_no_framework_and_not_numpy():
    """pytest loads it in every test run of every project in the environment."""
    code = ("import sys, wganx.testing\n"
            "print([m for m in ('numpy', 'torch', 'tensorflow', 'nnabla') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr

"""Shared fixtures. Backends are found through the plugin registry, like users find them."""
import os
from pathlib import Path

import numpy as np
import pytest

import wganx

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def available_backends():
    return [e.name for e in wganx.registry().entries("backend") if e.availability()[0]]


def pytest_report_header(config):
    return f"wganx backends available: {', '.join(available_backends()) or 'none'}"


@pytest.fixture(scope="session")
def backends():
    return available_backends()


@pytest.fixture(params=available_backends() or [pytest.param("none", marks=pytest.mark.skip("no backend"))])
def backend_name(request):
    return request.param


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run ``python -m wganx ARGS`` in a subprocess, like a user at a shell."""
    import subprocess
    import sys

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "wganx", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout)

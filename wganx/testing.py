"""A pytest plugin for testing wganx plugins against every installed backend.

wganx registers this module under the ``pytest11`` entry point, so pytest loads it in any
environment where wganx is installed: there is nothing to import or configure. It provides

Fixtures:
    ``wganx_registry``
        The process-wide :class:`wganx.plugins.Registry` (entry points of every installed
        distribution, yours included).
    ``wganx_backend``
        The *name* of one available backend; a test that asks for it runs once per
        available backend (``test_x[torch]``, ``test_x[tensorflow]``, ...). With no backend
        available the test is skipped.
    ``wganx_backends``
        The list of all available backend names (at least one, else the test is skipped).

Helpers:
    :func:`cases_for` -- the cases of the parity matrix that involve a distribution's plugins.
    :func:`assert_parity` -- run one parity case across backends and fail with the table of
    mismatches.

Command-line option ``--wganx-backends=torch,nnabla`` (or the environment variable
``WGANX_TEST_BACKENDS``) restricts the backends used, e.g. on a machine where one framework
is installed but too slow.

Example test module of a plugin distribution::

    import pytest
    from wganx.testing import assert_parity, cases_for

    @pytest.mark.parametrize("case", cases_for("my-wganx-plugin"), ids=lambda c: c.label)
    def test_parity(case, wganx_backends):
        assert_parity(case, backends=wganx_backends)

This module imports no deep-learning framework and not even numpy at import time: pytest
loads it in every run of every project in the environment. Backends are imported only when
a test compiles a program on them.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence

import pytest

ENV_VAR = "WGANX_TEST_BACKENDS"
_OPTION = "--wganx-backends"


# -- pytest hooks ----------------------------------------------------------------------------
def pytest_addoption(parser):
    group = parser.getgroup("wganx", "wganx plugin testing")
    group.addoption(_OPTION, action="store", default=None, metavar="NAMES",
                    help="comma-separated wganx backends the wganx_backend(s) fixtures use "
                         f"(default: ${ENV_VAR}, else every available backend)")


def pytest_generate_tests(metafunc):
    if "wganx_backend" in metafunc.fixturenames:
        names = _selected(metafunc.config)
        metafunc.parametrize("wganx_backend", names, ids=names, scope="session")


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def wganx_registry():
    """The registry of installed wganx plugins (built once per session)."""
    import wganx

    return wganx.registry()


@pytest.fixture(scope="session")
def wganx_backends(request) -> List[str]:
    """Names of the available (and selected) backends; skips when there is none."""
    names = _selected(request.config)
    if not names:
        pytest.skip("no wganx backend is available")
    return names


# -- helpers ---------------------------------------------------------------------------------
def available_backends(registry=None) -> List[str]:
    """Names of installed backends whose framework can be imported (none is imported)."""
    import wganx

    reg = registry or wganx.registry()
    return [e.name for e in reg.entries("backend") if e.availability()[0]]


def _requested(config) -> Optional[List[str]]:
    raw = None
    if config is not None:
        raw = config.getoption(_OPTION.lstrip("-").replace("-", "_"), default=None)
    raw = raw if raw is not None else os.environ.get(ENV_VAR)
    if raw is None or not raw.strip():
        return None
    return [n.strip() for n in raw.split(",") if n.strip()]


def _selected(config) -> List[str]:
    available = available_backends()
    requested = _requested(config)
    if requested is None:
        return available
    unknown = [n for n in requested if n not in available]
    if unknown:
        raise pytest.UsageError(f"{_OPTION}/{ENV_VAR}: backend(s) {', '.join(unknown)} not available; "
                                f"available: {', '.join(available) or '(none)'}")
    return requested


def cases_for(distribution: str, registry=None) -> list:
    """Cases of :func:`wganx.parity.default_cases` that use a plugin of ``distribution``.

    A case is included when its architecture, upsampler, regularizer, loss or augmentation is
    registered by that distribution (as ``wganx plugins`` names it, e.g. ``"wganx-example-plugin"``).
    Raises when the distribution registers none of these, which usually means it is not
    installed.
    """
    import wganx
    from wganx.augment import split as split_augment
    from wganx.parity import default_cases

    reg = registry or wganx.registry()
    owned = {(e.kind, e.name) for e in reg.entries() if e.package == distribution}
    if not owned:
        raise LookupError(f"no wganx plugin of distribution {distribution!r} is installed; "
                          f"pip install it (e.g. pip install -e .) and retry")

    def uses(case) -> bool:
        return any(pair in owned for pair in (("architecture", case.arch), ("upsampler", case.up),
                                              ("regularizer", case.regularizer), ("loss", case.loss),
                                              ("augmentation", split_augment(case.augment)[0])))

    return [c for c in default_cases(reg) if uses(c)]


def run_parity(case, backends: Optional[Sequence[str]] = None, registry=None) -> list:
    """Compile ``case`` on ``backends`` (default: all available) and compare them.

    Returns the list of :class:`wganx.parity.Check`. With one backend there is nothing to
    compare: the case is still built, compiled and stepped (a smoke test) and ``[]`` returned.
    """
    import wganx
    from wganx.build import load_backend
    from wganx.parity import check_case

    reg = registry or wganx.registry()
    names = list(backends) if backends else available_backends(reg)
    if not names:
        pytest.skip("no wganx backend is available")
    return check_case(case, {name: load_backend(name, reg=reg) for name in names}, reg)


def assert_parity(case, backends: Optional[Sequence[str]] = None, registry=None) -> list:
    """Like :func:`run_parity`, failing the test with every mismatch when one is found."""
    from wganx.parity import Report, format_table

    checks = run_parity(case, backends, registry)
    failed = [c for c in checks if not c.passed]
    if failed:
        names = sorted({c.backend for c in checks} | {c.reference for c in checks})
        pytest.fail(f"parity mismatch on {case.label}:\n" + format_table(Report(names, failed)),
                    pytrace=False)
    return checks


__all__ = ["assert_parity", "available_backends", "cases_for", "run_parity",
           "wganx_backends", "wganx_registry"]

"""The core as a whole, without any framework: what importing it does, its import graph, the
backends a run of the suite requires, ``python -m wganx``."""
import json
import subprocess
import sys
import textwrap

import pytest

import wganx

from conftest import run_cli

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


def test_python_dash_m_and_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"wganx {wganx.__version__}"

"""Every hook specification is documented, runnable as a doctest, consumed by the registry,
and implemented by installed plugins that return records of the right type."""
from __future__ import annotations

import doctest
import inspect

import pytest

import wganx
from wganx import hookspecs, records
from wganx.plugins import KINDS

# hook -> the record type its implementations must return
RECORD = {
    "wganx_backends": records.BackendSpec,
    "wganx_architectures": records.ArchitectureSpec,
    "wganx_upsamplers": records.UpsamplerSpec,
    "wganx_regularizers": records.RegularizerSpec,
    "wganx_losses": records.LossSpec,
    "wganx_augmentations": records.AugmentSpec,
    "wganx_datasets": records.DatasetSpec,
    "wganx_metrics": records.MetricSpec,
    "wganx_features": records.FeatureSpec,
    "wganx_commands": records.CommandSpec,
}

SPECS = {name: fn for name, fn in vars(hookspecs).items()
         if callable(fn) and hasattr(fn, f"{hookspecs.PROJECT}_spec")}


def test_the_spec_list_is_what_the_registry_and_this_test_know():
    assert set(SPECS) == set(RECORD) == set(KINDS.values())


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_is_documented_with_an_example(name):
    doc = inspect.getdoc(SPECS[name]) or ""
    record = RECORD[name]
    assert f":class:`wganx.records.{record.__name__}`" in doc, f"{name} must name its record type"
    assert "Example" in doc and ">>>" in doc, f"{name} needs an Example with doctest lines"
    params = list(inspect.signature(SPECS[name]).parameters)
    assert documented_args(doc) == params, f"{name}: the Args section must list exactly {params}"


def documented_args(doc: str) -> list:
    """Names listed in a Google-style ``Args:`` section, in order."""
    names, inside = [], False
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            inside = True
            continue
        if inside:
            if line and not line.startswith(" "):
                break
            head = line.strip().split(":")[0].split(" ")[0]
            if line.startswith("    ") and not line.startswith("        ") and head.isidentifier():
                names.append(head)
    return names


def test_documented_args_parser():
    doc = "Summary.\n\nArgs:\n    ops: the ops.\n    x (Tensor): input,\n        continued.\n\nExample::\n"
    assert documented_args(doc) == ["ops", "x"]
    assert documented_args("No args.") == []


@pytest.mark.parametrize("name", sorted(SPECS))
def test_implementations_take_only_the_spec_arguments(name):
    spec_args = set(inspect.signature(SPECS[name]).parameters)
    impls = getattr(wganx.registry().manager.hook, name).get_hookimpls()
    assert impls, f"no installed plugin implements {name}"
    for impl in impls:
        assert set(impl.argnames) <= spec_args, (impl.plugin_name, impl.argnames)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_installed_plugins_return_records_of_the_right_type(name):
    results = getattr(wganx.registry().manager.hook, name)()
    flat = [r for result in results for r in (result or ())]
    assert flat, f"installed plugins return nothing from {name}"
    for record in flat:
        assert isinstance(record, RECORD[name]), (name, record)
        assert isinstance(record.name, str) and record.name and record.name == record.name.strip()
    kind = next(k for k, hook in KINDS.items() if hook == name)
    assert sorted({r.name for r in flat}) == wganx.registry().names(kind)


@pytest.mark.parametrize("name", ["module"] + sorted(SPECS))
def test_docstring_examples_run(name):
    obj = hookspecs if name == "module" else SPECS[name]
    finder = doctest.DocTestFinder(recurse=False)
    tests = finder.find(obj, name=f"wganx.hookspecs.{name}", module=hookspecs,
                        globs={"__name__": "wganx.hookspecs"})
    examples = sum(len(t.examples) for t in tests)
    assert examples, f"{name}: no doctest examples found"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"

"""Moved names stay importable for one minor release, warn with their new place, and are the
same objects; what never existed is still an AttributeError."""
import importlib

import pytest

MOVED = {
    "wganx.build.step_inputs": "wganx.algorithm.step_inputs",
    "wganx.build.build_program": "wganx.build.program_from_config",
    "wganx.errors.notice": "wganx.notices.notice",
    "wganx.errors.silence_notices": "wganx.notices.silence_notices",
    "wganx.distributed.TF_CPU_DEVICES_ENV": "wganx_tensorflow.plugin.CPU_DEVICES_ENV",
    **{f"wganx.program.{name}": f"wganx.algorithm.{name}" for name in (
        "Program", "critic_objective", "generator_objective", "EMA_PREFIX", "ema_name", "ema_decay_at",
        "split_params")},
    **{f"wganx.nnabla_example.{name}": f"wganx_plugins.nnabla_example.{name}" for name in (
        "import_h5", "export_h5", "example_name", "import_command", "export_command", "EXAMPLE_UPSAMPLERS")},
}


def _resolve(dotted):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_name_warns_with_its_new_place_and_is_the_same_object(old):
    new = MOVED[old]
    if new.startswith("wganx_tensorflow."):
        pytest.importorskip("wganx_tensorflow")
    with pytest.warns(DeprecationWarning, match=rf"^{old} moved to {new}; the old name goes in wganx 0\.3$"):
        value = _resolve(old)
    assert value is _resolve(new)


def test_from_import_of_a_moved_name_warns_too():
    with pytest.warns(DeprecationWarning, match="wganx.algorithm.step_inputs"):
        from wganx.build import step_inputs  # noqa: F401


def test_a_name_that_never_existed_is_an_attribute_error():
    import wganx.build
    import wganx.nnabla_example
    import wganx.program

    for module in (wganx.build, wganx.program, wganx.nnabla_example):
        with pytest.raises(AttributeError, match=f"module '{module.__name__}' has no attribute 'nothing'"):
            module.nothing

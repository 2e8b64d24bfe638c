"""wganx.options: the options commands share, spelled and explained alike, and completion."""
import typing

from wganx import options
from wganx.cli import command
from wganx.config import CONTEXTS
from wganx.errors import WganxError
from wganx.plugins import registry


def option_of(annotated):
    return typing.get_args(annotated)[1]


def test_plugin_names_complete_from_the_registry():
    upsamplers = registry().names("upsampler")
    assert options.complete_plugin_names("upsampler")("") == upsamplers
    assert options.complete_plugin_names("upsampler")("ne") == [n for n in upsamplers if n.startswith("ne")]
    assert "nearest" in options.complete_plugin_names("upsampler")("ne")


def test_completion_never_raises(monkeypatch):
    """A broken plugin environment leaves the shell's completion empty, not a stack trace."""
    def broken():
        raise WganxError("two distributions register 'nearest'")
    monkeypatch.setattr(options, "plugin_registry", broken)
    assert options.complete_plugin_names("upsampler")("n") == []


def test_commands_that_share_an_option_spell_and_explain_it_alike():
    """``wganx generate`` and ``wganx evaluate`` take -c, -d and --threads from here: the same
    flags as ``wganx train``, and the same help for --threads."""
    train = {p.name: p for p in command("train").params}
    for name in ("generate", "evaluate"):
        params = {p.name: p for p in command(name).params}
        for option in ("context", "device_id", "threads"):
            assert params[option].opts == train[option].opts, (name, option)
        assert train["threads"].help.startswith(params["threads"].help)  # train adds its default
    assert option_of(options.Context).autocompletion("cu") == [c for c in CONTEXTS if c.startswith("cu")]

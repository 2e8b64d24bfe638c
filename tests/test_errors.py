"""wganx.errors: what a user sees of a problem with their input or environment."""
import pytest

from wganx.errors import Interrupted, Range, UnknownNameError, WganxError, check_choice


def test_an_unknown_name_lists_the_choices_sorted_and_reads_as_its_message():
    err = UnknownNameError("upsampler", "pixelshufle", ["nearest", "deconv", "pixelshuffle"])
    assert str(err) == "unknown upsampler 'pixelshufle'; choose one of: deconv, nearest, pixelshuffle"
    assert isinstance(err, KeyError) and isinstance(err, WganxError)  # a mapping's miss, and one line
    assert (err.kind, err.name, err.choices) == ("upsampler", "pixelshufle", ["deconv", "nearest", "pixelshuffle"])
    assert str(UnknownNameError("metric", "fid", [])).endswith("choose one of: (none installed)")


def test_check_choice_names_the_flag_and_the_choices():
    check_choice("--format", "png", ("png", "npz"))
    with pytest.raises(WganxError, match=r"^--format must be one of png, npz, got 'gif'$"):
        check_choice("--format", "gif", ("png", "npz"))
    with pytest.raises(WganxError, match=r"^--n must be one of 1, 2, got 3$"):
        check_choice("--n", 3, (1, 2))


def test_a_notebook_shows_the_message_alone():
    """IPython calls ``_render_traceback_`` instead of printing a stack trace."""
    assert WganxError("no such file")._render_traceback_() == ["WganxError: no such file"]
    assert UnknownNameError("loss", "x", ["hinge"])._render_traceback_() == [
        "UnknownNameError: unknown loss 'x'; choose one of: hinge"]


def test_interrupted_is_not_a_keyboard_interrupt_and_carries_the_signal():
    err = Interrupted(15, at_once=True)
    assert not isinstance(err, KeyboardInterrupt) and (err.signum, err.at_once) == (15, True)
    assert Interrupted(2).at_once is False


@pytest.mark.parametrize("bound,value,message", [
    (Range(1), 0, "--n must be at least 1, got 0"),
    (Range(0), -0.5, "--n must not be negative, got -0.5"),
    (Range(0, 1), 1.0, r"--n must be in \[0, 1\), got 1.0"),
    (Range(0, 1), -1e-9, r"--n must be in \[0, 1\), got -1e-09"),
    (Range(0, 1, high_closed=True), 1.5, r"--n must be in \[0, 1\], got 1.5"),
    (Range(0, 1, low_open=True), 0.0, r"--n must be in \(0, 1\), got 0.0"),
    (Range(0, low_open=True), 0, "--n must be greater than 0, got 0"),
])
def test_a_range_names_what_it_takes(bound, value, message):
    with pytest.raises(WganxError, match=f"^{message}$"):
        bound.check("--n", value)
    assert (bound.low in bound) is not bound.low_open
    if bound.high is not None:
        assert (bound.high in bound) is bound.high_closed

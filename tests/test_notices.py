"""wganx.notices: one line on stderr for what wganx did for the user, quiet in replicas."""
import pytest

from wganx import notices


@pytest.fixture
def restore_notices():
    before = dict(notices._NOTICES)
    yield
    notices._NOTICES.update(before)


def test_a_notice_is_one_prefixed_line_on_stderr(capsys, restore_notices):
    notices.notice("dropped 1 damaged row of losses.csv")
    out, err = capsys.readouterr()
    assert out == "" and err == "wganx: dropped 1 damaged row of losses.csv\n"


def test_a_silenced_process_prints_nothing(capsys, restore_notices):
    notices.silence_notices()
    notices.notice("only the writing replica says this")
    assert capsys.readouterr() == ("", "")

"""stderr: whether a bar is drawn, and --quiet."""

from __future__ import annotations

import logging
import sys

import pytest

from segments_async._cli import console, progress


def test_no_bar_off_a_terminal(monkeypatch):
    """Off a terminal there is no bar, and rich is not imported for one."""
    monkeypatch.delitem(sys.modules, "rich", raising=False)
    ui = console.Ui()
    ui.stderr_is_terminal = False

    assert isinstance(ui.bar("export", data_on_stdout=False), progress.NoBar)
    assert "rich" not in sys.modules


def test_no_bar_when_the_data_scrolls_on_the_same_terminal():
    """Export to a terminal shows the data, not a bar fighting it."""
    ui = console.Ui()
    ui.stderr_is_terminal = ui.stdout_is_terminal = True

    assert isinstance(ui.bar("export", data_on_stdout=True), progress.NoBar)


def test_without_rich_the_command_line_works_without_a_bar(monkeypatch):
    """The cli extra is optional: without rich, a terminal gets no bar, and nothing fails."""
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    ui = console.Ui()
    ui.stderr_is_terminal = True

    assert isinstance(ui.bar("import", data_on_stdout=False), progress.NoBar)


def test_quiet_draws_no_bar_even_on_a_terminal():
    """--quiet: no bar wherever stderr is."""
    ui = console.Ui(quiet=True)
    ui.stderr_is_terminal = True

    assert isinstance(ui.bar("import", data_on_stdout=False), progress.NoBar)


@pytest.mark.parametrize(("quiet", "said"), [(False, 2), (True, 1)])
def test_quiet_silences_summaries_not_errors(quiet, said, capsys):
    """A summary goes only without --quiet; what must be read goes either way."""
    ui = console.Ui(quiet=quiet)

    ui.summary("import: 3 succeeded, 0 failed, 0 unknown")
    ui.say("error: the token was refused (401)")

    lines = capsys.readouterr().err.splitlines()
    assert said == len(lines)
    assert "segments-async: error: the token was refused (401)" == lines[-1]


@pytest.mark.parametrize(
    ("debug", "quiet", "level"),
    [
        (False, False, logging.WARNING),
        (False, True, logging.ERROR),
        (True, False, logging.DEBUG),
        (True, True, logging.DEBUG),
    ],
)
def test_the_library_log_follows_debug_and_quiet(debug, quiet, level):
    """Retries (WARNING) are shown unless --quiet; --debug shows every request, and wins."""
    logger = logging.getLogger("segments_async")
    before = logger.level

    with console.library_log(debug=debug, quiet=quiet):
        assert level == logger.level
    assert before == logger.level

"""What is echoed of an input: an excerpt, one line, terminal-safe."""

from __future__ import annotations

import pytest

from segments_async._cli.text import excerpt, one_line, terminal_safe


@pytest.mark.parametrize(
    ("text", "shown"),
    [("short", "short"), ("é" * 300, "é" * 200 + "... (600 bytes)")],
)
def test_an_excerpt_is_the_text_or_its_start_and_size(text, shown):
    """Inputs up to 256 characters are echoed whole; longer, 200 and the size in bytes."""
    assert shown == excerpt(text)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Zürich ✓", "Zürich ✓"),
        ("evil\x1b[2J\rname\u202e", "evil\\x1b[2J\\rname\\u202e"),
        ("a\tb\nc", "a\\tb\\nc"),
    ],
)
def test_terminal_safe_escapes_what_could_drive_a_terminal(text, shown):
    """Printable text is left alone; control characters and bidi overrides are escaped."""
    assert shown == terminal_safe(text)


def test_one_line_joins_every_run_of_white_space():
    """Line breaks and runs of spaces become one space; the ends are trimmed."""
    assert "boom more text" == one_line("  boom\r\nmore \t text\n")

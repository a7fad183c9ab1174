"""How the command line echoes text it did not write: excerpts, one line, terminal-safe.

Inputs and a server's messages can be huge, span lines or hold escape sequences; what
goes into a report line, onto stderr or into a table goes through here.
"""

from __future__ import annotations

from typing import Final

__all__ = ["EXCERPT_CHARS", "excerpt", "one_line", "terminal_safe"]

#: How much of a long text is echoed (in the report, on stderr).
EXCERPT_CHARS: Final = 200
#: A text up to this long is echoed whole.
ECHOED_WHOLE: Final = 256


def excerpt(text: str, size: int | None = None) -> str:
    """``text`` if it is short, else its start and its size (``size`` bytes if given)."""
    if size is None and len(text) <= ECHOED_WHOLE:
        return text
    size = len(text.encode("utf-8", "surrogatepass")) if size is None else size
    return f"{text[:EXCERPT_CHARS]}... ({size:,} bytes)"


def one_line(text: str) -> str:
    """``text`` with every run of white space (line breaks included) as one space."""
    return " ".join(text.split())


def terminal_safe(text: str) -> str:
    """``text`` with every non-printable character escaped, so a name cannot drive the
    terminal (escape sequences, bidi overrides, carriage returns)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)

"""Run the fake Segments API standalone: ``python -m segments_async.testing --segments 1000``.

The options and what they do are in ``_command`` (shared with ``segments-async serve-fake``).
"""

from __future__ import annotations

import sys

from ._command import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())

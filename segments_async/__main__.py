"""``python -m segments_async``: the ``segments-async`` command line (see ``_cli``)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())

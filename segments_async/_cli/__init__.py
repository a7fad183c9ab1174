"""The ``segments-async`` command line (also ``python -m segments_async``).

One question per module, arrows pointing down:

- ``core``: the entry point: parse, run the command, exit status and error line;
- ``definition``: the parser (commands, options, help texts, examples);
- ``commands``: what each API command does; ``bulk``: how a bulk command runs;
- ``config``: the client the options describe; ``demo``: the embedded demo;
- ``reader``: input read in a thread; ``inputs``: input lines parsed (pure);
- ``outputs``: where and how segments are written; ``report``: each item's outcome (pure);
- ``console``: stderr and ``--quiet``; ``progress``: the bar;
- ``argtypes``, ``status``, ``text``: value parsers, exit statuses, echoed text (pure).
"""

from .core import main

__all__ = ["main"]

"""Every Python block of the README type-checks as written under ``mypy --strict``.

One mypy run over all of them, each block its own module named after its line in the
README (``readme_line_N.py``: its line ``k`` is README line ``N + k - 1``).
That covers every recipe the integration tests run (the ``<!-- recipe: NAME -->`` blocks,
the web-backend and testing sections) and the examples beside them. Exceptions, both
named here: a block that calls ``http_status`` gets the block that defines it appended,
as ``tests/integration/test_recipes.py`` runs them together; the notebook recipe awaits
at the top level as a notebook cell does, so that error code alone is off in its file.
The fragments below are lines the reader puts inside code of their own, with names of
their own (``client``, ``load_checkpoint``): not programs, so not checked.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from .integration.support import README, recipe

#: Blocks that are not programs, each told by a line of it: a signature, and lines for the
#: reader's own ``async def`` (an ``async for`` at the top level does not even parse).
FRAGMENTS = {
    "timeout=30.0,": "the constructor's signature, with its defaults",
    "async with aclosing(client.segments.iterate(concurrency=16)) as segments:": "aclosing",
    "done = load_checkpoint()": "a resumable export, with the reader's own storage",
    "async with asyncio.timeout(60):": "a bound on a whole iteration",
}

#: What a notebook cell may do that a module may not.
NOTEBOOK = '# mypy: disable-error-code="top-level-await"\n'


def python_blocks() -> dict[int, str]:
    """The README's Python blocks, by the line their code starts on."""
    text = README.read_text(encoding="utf-8")
    return {
        text.count("\n", 0, found.start(1)) + 1: found[1]
        for found in re.finditer(r"```python\n(.*?)```", text, flags=re.DOTALL)
    }


def is_fragment(code: str) -> bool:
    return any(line in code for line in FRAGMENTS)


def modules() -> dict[str, str]:
    """Every block but the fragments, as a module: its name and its code."""
    blocks = {line: code for line, code in python_blocks().items() if not is_fragment(code)}
    (mapping,) = [code for code in blocks.values() if "def http_status(" in code]
    notebook = recipe("notebook")
    found = {}
    for line, code in blocks.items():
        if "http_status(" in code and code is not mapping:
            code += "\n\n" + mapping  # after the block, so that its lines keep their numbers
        if code.strip() == notebook.strip():
            code = NOTEBOOK + code
            line -= 1
        found[f"readme_line_{line}"] = code
    return found


def test_every_fragment_is_in_the_readme_once():
    """Each named fragment still matches one block (else it has been removed or split)."""
    fragments = [code for code in python_blocks().values() if is_fragment(code)]

    assert len(FRAGMENTS) == len(fragments)
    for line in FRAGMENTS:
        assert 1 == sum(line in code for code in fragments), line


def test_the_recipes_are_among_the_checked():
    """The recipes the integration tests run are checked, the notebook like a notebook."""
    checked = modules()
    text = "\n".join(checked.values())
    for name in ("bulk", "bulk-reconcile", "json-logging", "opentelemetry-aiohttp"):
        assert recipe(name) in text
    assert 1 == sum(code.startswith(NOTEBOOK) for code in checked.values())
    assert len(checked) >= 18


def test_every_block_passes_mypy_strict(tmp_path: Path):
    """One mypy --strict run over every block that is a program (with a warm cache)."""
    api = pytest.importorskip("mypy.api")
    files = []
    for name, code in modules().items():
        path = tmp_path / f"{name}.py"
        path.write_text(code, encoding="utf-8")
        files.append(str(path))
    cache = Path(__file__).parent.parent / ".mypy_cache"  # warm from `mypy segments_async`
    stdout, stderr, status = api.run(
        ["--strict", "--cache-dir", str(cache), "--python-executable", sys.executable, *files]
    )

    assert 0 == status, stdout + stderr

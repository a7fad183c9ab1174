"""The README's bulk recipes, run exactly as written there, against the fake server."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import orjson

from segments_async.testing import FakeSegmentsServer, Fault

from .support import run_recipe


async def test_import_export_and_reconcile(monkeypatch, tmp_path):
    """A CSV imported with a refused name and two lost answers; reconciling creates nothing."""
    names = [f"Region {number}" for number in range(40)]
    names[7] = ""  # the fake refuses an empty name: 422
    source = tmp_path / "names.csv"
    source.write_text("name\n" + "\n".join(f'"{name}"' for name in names) + "\n")
    async with FakeSegmentsServer() as server:
        bulk = run_recipe("bulk", monkeypatch, server.base_url, server.token)
        reconcile = run_recipe("bulk-reconcile", monkeypatch, server.base_url, server.token)
        # Two creates are carried out, then their answers are lost: outcome unknown.
        server.inject(Fault.reset_after(), method="POST", times=2)

        unknown = await bulk.import_names(str(source))
        assert 2 == len(unknown)
        assert 39 == len(server.segments())  # every name but the empty one exists

        async with reconcile.SegmentsClient() as client:
            await reconcile.create_missing(client, unknown)
        assert 39 == len(server.segments())  # nothing created twice

        target = tmp_path / "segments.jsonl"
        await bulk.export(str(target))
    exported = [orjson.loads(line) for line in target.read_bytes().splitlines()]
    assert sorted(name for name in names if name) == sorted(row["name"] for row in exported)


async def test_a_blocking_source_pulled_in_a_thread(monkeypatch, tmp_path):
    """A database table of 1,200 names, fetched 500 at a time off the loop, all created."""
    path = tmp_path / "regions.db"
    names = [f"Region {number}" for number in range(1_200)]
    with closing(sqlite3.connect(path)) as database, database:
        database.execute("CREATE TABLE regions (id INTEGER PRIMARY KEY, name TEXT)")
        database.executemany("INSERT INTO regions (name) VALUES (?)", [(n,) for n in names])
    async with FakeSegmentsServer() as server:
        blocking = run_recipe("bulk-blocking", monkeypatch, server.base_url, server.token)

        created = await blocking.import_from_database(str(path))

        assert 1_200 == created
        assert sorted(names) == sorted(server.segments().values())

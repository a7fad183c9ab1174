"""The parser: commands, global options on either side, help texts, usage errors."""

from __future__ import annotations

import argparse
import sys

import pytest

from segments_async._cli import definition, main
from segments_async.testing import Fault
from segments_async.testing._command import add_options

from ..conftest import SEGMENT_ID

COMMANDS = ("list", "export", "create", "rename", "delete", "import", "delete-many")


def parse(*argv: str) -> argparse.Namespace:
    return definition.build_parser().parse_args(argv)


@pytest.mark.parametrize("command", [*COMMANDS, "demo", "serve-fake"])
def test_every_command_has_help_with_an_example(command, capsys):
    """`segments-async COMMAND --help` exits 0 and shows an example of the command."""
    assert 0 == main([command, "--help"])

    shown = capsys.readouterr().out
    assert "example:" in shown
    assert f"segments-async {command}" in shown.split("example:", 1)[1]


def test_no_command_prints_help_on_stderr_and_exits_2(capsys):
    """A bare `segments-async` lists the commands on stderr, status 2."""
    assert 2 == main([])

    captured = capsys.readouterr()
    assert "" == captured.out
    for command in COMMANDS:
        assert command in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["--timeout", "5", "list"],
        ["list", "--timeout", "5"],
        ["--timeout", "9", "list", "--timeout", "5"],
    ],
)
def test_global_options_work_before_or_after_the_command(argv):
    """A global option is read on either side; after the command, it wins."""
    args = parse(*argv)

    assert 5.0 == args.timeout


def test_global_defaults_hold_when_no_option_is_given():
    """Defaults: 30 s per attempt, 2 retries, no deadline or rate limit, concurrency 16."""
    args = parse("export")

    assert (30.0, 2, None, None, False) == (
        args.timeout,
        args.retries,
        args.deadline,
        args.rate_limit,
        args.debug,
    )
    assert (16, 100, None) == (args.concurrency, args.per_page, args.limit)


@pytest.mark.parametrize(
    "argv",
    [
        ["--token", "x", "list"],
        ["list", "--token", "x"],
        ["list", "--token=x"],
        ["list", "--token"],
        ["--token-f", "x", "list"],
        ["list", "--base", "https://api.example.com"],
        ["export", "--conc", "4"],
    ],
)
def test_tokens_and_abbreviations_are_usage_errors(argv, capsys):
    """--token is refused, and no prefix stands for a longer option (--token-file)."""
    assert 2 == main(argv)

    err = capsys.readouterr().err
    assert 1 == len(err.splitlines())
    assert "error:" in err


def test_token_option_explains_where_a_token_goes(capsys):
    """The refusal of --token points at --token-file and SEGMENTS_API_TOKEN."""
    assert 2 == main(["list", "--token", "sekret"])

    err = capsys.readouterr().err
    assert "--token-file" in err
    assert "SEGMENTS_API_TOKEN" in err
    assert "sekret" not in err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["export", "--concurrency", "0"], "--concurrency"),
        (["export", "--concurrency", "many"], "--concurrency"),
        (["export", "--limit", "0"], "--limit"),
        (["list", "--per-page", "-1"], "--per-page"),
        (["--timeout", "0", "list"], "--timeout"),
        (["--timeout", "nan", "list"], "--timeout"),
        (["--deadline", "inf", "list"], "--deadline"),
        (["--retries", "-1", "list"], "--retries"),
        (["--rate-limit", "0", "list"], "--rate-limit"),
        (["export", "--format", "xml"], "--format"),
        (["rename", SEGMENT_ID], "NAME"),
        (["delete"], "SEGMENT_ID"),
    ],
)
def test_bad_options_are_one_line_usage_errors(argv, complaint, capsys):
    """A bad value is status 2 and one line naming the option."""
    assert 2 == main(argv)

    err = capsys.readouterr().err
    assert 1 == len(err.splitlines())
    assert complaint in err


def test_concurrency_takes_auto_or_a_count():
    """--concurrency auto or N >= 1."""
    assert "auto" == parse("export", "--concurrency", "auto").concurrency
    assert 3 == parse("import", "x.csv", "--concurrency", "3").concurrency


@pytest.mark.parametrize(
    "argv", [["--quiet", "export"], ["export", "--quiet"], ["-q", "import", "x.csv"]]
)
def test_quiet_is_a_global_option(argv):
    """--quiet (or -q) before or after the command."""
    assert parse(*argv).quiet
    assert not parse("export").quiet


@pytest.mark.parametrize(
    ("argv", "fmt"),
    [
        ([], None),
        (["--format", "csv"], "csv"),
        (["--format", "table"], "table"),
        (["--json"], "jsonl"),
    ],
)
def test_list_takes_a_format_and_json_stays_its_alias(argv, fmt):
    """--json is --format jsonl; without either, the output decides (see outputs)."""
    assert fmt == parse("list", *argv).format


def test_list_format_and_json_together_are_a_usage_error(capsys):
    """Two formats at once is one line, status 2."""
    assert 2 == main(["list", "--json", "--format", "csv"])

    (line,) = capsys.readouterr().err.splitlines()
    assert "not allowed with argument" in line


def test_serve_fake_takes_the_testing_kits_options():
    """Each option of `python -m segments_async.testing` is one of serve-fake's, from the
    same definition."""
    kit = argparse.ArgumentParser()
    add_options(kit)
    args = parse(
        *("serve-fake", "--port", "8080", "--segments", "3", "--token", "tok-1"),
        *("--fault", "503,method=POST", "--fault", "latency=0.1", "--concurrency-limit", "2"),
    )

    kit_options = {o for action in kit._actions for o in action.option_strings} - {"-h"}
    serve_fake = build_serve_fake_parser()
    assert kit_options <= {o for action in serve_fake._actions for o in action.option_strings}
    assert (8080, 3, "tok-1", 2) == (args.port, args.segments, args.token, args.concurrency_limit)
    assert [Fault.status(503), Fault.latency(0.1)] == [spec.fault for spec in args.faults]


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["serve-fake", "--fault", "503,times=0"], "argument --fault: times must be >= 1"),
        (["serve-fake", "--fault", "teapot"], "argument --fault: not a fault or an option"),
        (["serve-fake", "--seed", "1", "--segments", "2"], "--seed is the deprecated spelling"),
    ],
)
def test_bad_serve_fake_options_are_one_line_usage_errors(argv, complaint, capsys):
    """Status 2 and one line naming the option, the spec and what is wrong with it."""
    assert 2 == main(argv)

    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"segments-async serve-fake: error: {complaint}")


def test_other_commands_do_not_import_the_testing_kit(monkeypatch):
    """serve-fake's options come from the testing kit (aiohttp's server) only when it is
    chosen: the other commands are parsed without importing it."""
    monkeypatch.setitem(sys.modules, "segments_async.testing._command", None)

    assert "jsonl" == parse("list", "--json").format
    with pytest.raises(ImportError):
        parse("serve-fake")


def build_serve_fake_parser() -> argparse.ArgumentParser:
    """serve-fake's own parser, its options added (as when it is chosen)."""
    parser = definition.build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    parser.parse_args(["serve-fake"])
    return commands.choices["serve-fake"]

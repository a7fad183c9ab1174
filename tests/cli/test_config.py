"""The client the options describe: the environment, the flags, the token file."""

from __future__ import annotations

import argparse

import pytest

from segments_async._cli import config, definition
from segments_async._cli.status import UsageError

from ..conftest import TOKEN

COMMANDS = ("list", "export", "create", "rename", "delete", "import", "delete-many")


def parse(*argv: str) -> argparse.Namespace:
    return definition.build_parser().parse_args(argv)


def client_for(monkeypatch, env: dict[str, str], *argv: str):
    for name in ("SEGMENTS_BASE_URL", "SEGMENTS_API_TOKEN", "SEGMENTS_FLEET_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return config.client(parse(*argv, "list"))


def test_configuration_comes_from_the_environment(monkeypatch):
    """SEGMENTS_BASE_URL and SEGMENTS_API_TOKEN configure the client, options map over."""
    env = {"SEGMENTS_BASE_URL": "https://env.example", "SEGMENTS_API_TOKEN": TOKEN}
    client = client_for(
        monkeypatch,
        env,
        "--timeout",
        "7",
        "--deadline",
        "60",
        "--retries",
        "0",
        "--rate-limit",
        "5",
    )

    assert "https://env.example" == client.base_url
    assert (7.0, 60.0, 0, 5.0) == (
        client.timeout.total,
        client.deadline,
        client.retry.max_retries,
        client.rate_limit,
    )


def test_the_fleet_comes_from_the_flag_or_the_environment(monkeypatch):
    """--fleet URL (before or after the command) or SEGMENTS_FLEET_URL; never its password."""
    env = {"SEGMENTS_BASE_URL": "https://env.example", "SEGMENTS_API_TOKEN": TOKEN}
    assert client_for(monkeypatch, env).fleet is None
    flagged = client_for(monkeypatch, env, "--fleet", "redis://:pw-1@cache:6379/1")
    assert "redis://cache:6379/1" == flagged.fleet
    after = config.client(parse("list", "--fleet", "redis://cache:6379/1"))
    assert "redis://cache:6379/1" == after.fleet
    env["SEGMENTS_FLEET_URL"] = "redis://env-cache/0"
    assert "redis://env-cache/0" == client_for(monkeypatch, env).fleet
    with pytest.raises(UsageError, match="Redis URL") as raised:
        client_for(monkeypatch, env, "--fleet", "http://:pw-1@cache/0")
    assert "pw-1" not in str(raised.value)


def test_flags_win_over_the_environment(monkeypatch, tmp_path):
    """--base-url and --token-file replace the environment's values."""
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    env = {"SEGMENTS_BASE_URL": "https://env.example", "SEGMENTS_API_TOKEN": "env-token"}

    client = client_for(
        monkeypatch, env, "--base-url", "https://flag.example", "--token-file", str(token_file)
    )

    assert "https://flag.example" == client.base_url
    assert TOKEN == client._shared.token


@pytest.mark.parametrize(
    ("env", "argv", "complaint"),
    [
        ({"SEGMENTS_API_TOKEN": TOKEN}, [], "SEGMENTS_BASE_URL"),
        ({"SEGMENTS_BASE_URL": "https://x.example"}, [], "SEGMENTS_API_TOKEN"),
        ({"SEGMENTS_API_TOKEN": TOKEN}, ["--base-url", "ftp://x"], "http"),
        ({"SEGMENTS_API_TOKEN": TOKEN}, ["--base-url", "http://x.example"], "--allow-insecure"),
        ({"SEGMENTS_API_TOKEN": "has space"}, ["--base-url", "https://x.example"], "token"),
    ],
)
def test_missing_or_bad_configuration_is_a_usage_error(monkeypatch, env, argv, complaint):
    """No base URL or token, a bad URL, or a bad token: UsageError, never the token."""
    with pytest.raises(UsageError, match=complaint) as raised:
        client_for(monkeypatch, env, *argv)

    assert "has space" not in str(raised.value)


def test_insecure_http_can_be_allowed(monkeypatch):
    """--allow-insecure-http lets http:// reach a host that is not this machine."""
    env = {"SEGMENTS_API_TOKEN": TOKEN}
    client = client_for(monkeypatch, env, "--base-url", "http://x.example", "--allow-insecure-http")

    assert "http://x.example" == client.base_url


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"", "is empty"),
        (b" \n\n", "is empty"),
        (b"two words\n", "does not hold one token"),
        ("tøken".encode(), "does not hold one token"),
        (b"\xff\xfe", "is not text"),
        (b"x" * 9000, "too large"),
    ],
)
def test_a_bad_token_file_is_a_usage_error_that_never_shows_it(data, complaint):
    """Empty, several words, not ASCII, not text, huge: refused without echoing a byte."""
    with pytest.raises(UsageError, match=complaint) as raised:
        config.token_from_bytes(data, "tok.txt")

    assert "tok.txt" in str(raised.value)
    assert "word" not in str(raised.value)


def test_a_token_file_may_end_in_a_newline_and_start_with_a_bom():
    """White space around the token and a UTF-8 BOM are dropped."""
    assert TOKEN == config.token_from_bytes(b"\xef\xbb\xbf  " + TOKEN.encode() + b"\r\n", "t")


def test_a_missing_token_file_is_a_usage_error(tmp_path):
    """A token file that cannot be read: UsageError naming it."""
    with pytest.raises(UsageError, match=r"cannot read the token file .*missing"):
        config.read_token(str(tmp_path / "missing"))

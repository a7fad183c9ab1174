"""The client the options describe: the environment, the flags over it, the token file.

The token is read from ``--token-file`` or ``SEGMENTS_API_TOKEN`` straight into the
client, never held in a variable of ours, and never echoed in an error.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Final

from .._client import SegmentsClient
from .._options import check_token
from .._retry import RetryPolicy
from .status import UsageError

__all__ = ["MAX_TOKEN_FILE_BYTES", "client", "read_token", "token_from_bytes"]

#: A token file is a few dozen bytes; anything much bigger is the wrong file.
MAX_TOKEN_FILE_BYTES: Final = 8192


def client(args: argparse.Namespace) -> SegmentsClient:
    """The client the options describe; a usage error for a missing or bad setting."""
    base_url = args.base_url or os.environ.get("SEGMENTS_BASE_URL") or None
    if base_url is None:
        raise UsageError("no API address: set SEGMENTS_BASE_URL or pass --base-url URL")
    if args.token_file is None and not os.environ.get("SEGMENTS_API_TOKEN"):
        raise UsageError("no API token: set SEGMENTS_API_TOKEN or pass --token-file FILE")
    concurrency = getattr(args, "concurrency", None)
    try:
        return SegmentsClient(
            base_url,
            # Read here, so that the token lives in no local variable of ours.
            read_token(args.token_file)
            if args.token_file is not None
            else os.environ["SEGMENTS_API_TOKEN"],
            timeout=args.timeout,
            deadline=args.deadline,
            retry=RetryPolicy(max_retries=args.retries),
            rate_limit=args.rate_limit,
            fleet=args.fleet,
            allow_insecure_http=args.allow_insecure_http,
            max_connections=max(100, concurrency if isinstance(concurrency, int) else 0),
        )
    except (TypeError, ValueError, ImportError) as error:  # ImportError: --fleet, no redis-py
        message = str(error).replace("pass allow_insecure_http=True", "pass --allow-insecure-http")
        raise UsageError(message) from None


def read_token(path: str) -> str:
    """The token the file at ``path`` (stdin for ``-``) holds."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_TOKEN_FILE_BYTES + 1)
        else:
            with open(path, "rb") as source:
                data = source.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as error:
        raise UsageError(f"cannot read the token file {path}: {error.strerror}") from None
    try:
        return token_from_bytes(data, path)
    finally:
        del data  # out of this frame before a traceback could show it


def token_from_bytes(data: bytes, source: str) -> str:
    """The token a token file holds (surrounding white space dropped), never echoed."""
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise UsageError(f"the token file {source} is too large to hold a token")
    try:
        text = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise UsageError(f"the token file {source} is not text") from None
    if not text:
        raise UsageError(f"the token file {source} is empty")
    try:
        return check_token(text)
    except (TypeError, ValueError):
        raise UsageError(
            f"the token file {source} does not hold one token (printable ASCII, no spaces)"
        ) from None

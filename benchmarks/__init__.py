"""Benchmarks for segments_async: run ``python -m benchmarks`` from the repository root."""

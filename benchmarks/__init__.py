"""Benchmarks, each against an authenticated no-op in the same run: `python -m benchmarks.<name>`."""

"""Benchmarks and the chaos run: ``python -m bench.<name>`` (never timed assertions inside tests)."""

"""Benchmarks of gcov-index against the seed workflow and the field's tools (see README.md)."""

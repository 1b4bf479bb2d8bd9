"""The tests of gcov-index (a package, so that ``tests.support`` is importable)."""

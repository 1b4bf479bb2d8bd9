"""The version alone, so that ``gcov-index --version`` imports nothing heavy."""

__version__ = "0.1.0"

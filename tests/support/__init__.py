"""Local stand-ins for NASA's archive and the granule generator: for tests, the demo and the
benchmarks only, never shipped."""

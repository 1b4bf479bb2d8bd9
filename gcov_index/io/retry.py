"""RetryPolicy: how hard gcov-index tries before a source is "unreachable" (exit 3).

One frozen value, held by :class:`~gcov_index.io.access.Access` and used by every request it
makes: obstore's S3 and HTTPS reads (scan, fingerprints, chunk reads) and the ``s3credentials``
request. A transient failure (an HTTP 5xx such as S3's 503 SlowDown, 429, a connection refused
or reset before or in the middle of a body, a truncated body, a stall, a timeout) is retried
with exponential backoff; what still fails is reported as unreachable. A refusal (401, 403) or
a missing object (404) is never retried.

The CLI reads overrides from the environment (``RetryPolicy.from_env()``, through
``Access.from_env()``); Python callers pass one: ``Access(..., retry=RetryPolicy(retries=8))``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta

from ..errors import BadInputError

# field -> environment variable
ENV_VARS = {
    "retries": "GCOV_INDEX_RETRIES",
    "backoff": "GCOV_INDEX_RETRY_BACKOFF",
    "max_backoff": "GCOV_INDEX_RETRY_MAX_BACKOFF",
    "retry_timeout": "GCOV_INDEX_RETRY_TIMEOUT",
    "timeout": "GCOV_INDEX_TIMEOUT",
    "connect_timeout": "GCOV_INDEX_CONNECT_TIMEOUT",
    "stall_timeout": "GCOV_INDEX_STALL_TIMEOUT",
}


@dataclass(frozen=True)
class RetryPolicy:
    """Retries, backoff and timeouts of every request (times in seconds)."""

    retries: int = 5  # tries after the first, per request
    backoff: float = 0.1  # before the first retry; doubles each time (obstore adds jitter)
    max_backoff: float = 5.0  # the longest wait between two tries
    retry_timeout: float = 180.0  # no retry is started this long after the first try
    timeout: float = 120.0  # one try, from connecting to the last byte of the body
    connect_timeout: float = 10.0  # connecting
    stall_timeout: float = 20.0  # no byte received for this long: the try is a stall

    def __post_init__(self) -> None:
        for f in fields(self):
            problem = _problem(f.name, getattr(self, f.name))
            if problem:
                raise BadInputError(f"retry policy {f.name}={getattr(self, f.name)!r}: {problem}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> RetryPolicy:
        """The defaults with the environment's overrides (``ENV_VARS``), then ``overrides``
        (``None`` values ignored)."""
        env = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for name, var in ENV_VARS.items():
            text = (env.get(var) or "").strip()
            if not text:
                continue
            try:
                value = int(text) if name == "retries" else float(text)
            except ValueError:
                value = text
            problem = _problem(name, value)
            if problem:
                raise BadInputError(f"{var}={text!r}: {problem}")
            values[name] = value
        return cls(**values).with_(**overrides)

    def with_(self, **overrides) -> RetryPolicy:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    # -- as the libraries take it -----------------------------------------------------------
    def obstore_retry(self) -> dict:
        """obstore's ``RetryConfig``."""
        return {"max_retries": int(self.retries),
                "backoff": {"init_backoff": timedelta(seconds=self.backoff),
                            "max_backoff": timedelta(seconds=max(self.max_backoff, self.backoff)),
                            "base": 2},
                "retry_timeout": timedelta(seconds=self.retry_timeout)}

    def obstore_client(self, allow_http: bool = False) -> dict:
        """obstore's ``ClientConfig`` timeouts (``read_timeout`` catches stalls mid-body)."""
        options = {"timeout": timedelta(seconds=self.timeout),
                   "connect_timeout": timedelta(seconds=self.connect_timeout),
                   "read_timeout": timedelta(seconds=self.stall_timeout)}
        if allow_http:
            options["allow_http"] = True
        return options

    @property
    def requests_timeout(self) -> tuple[float, float]:
        """``timeout=`` for requests: (connect, between two bytes)."""
        return (self.connect_timeout, self.stall_timeout)

    def delays(self) -> list[float]:
        """The waits before each retry (no jitter: for the few requests made with requests)."""
        return [min(self.backoff * 2 ** i, max(self.max_backoff, self.backoff))
                for i in range(int(self.retries))]


def _problem(name: str, value) -> str | None:
    if name == "retries":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else "give a whole number >= 0"
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 \
            or not math.isfinite(value):
        return "give a number of seconds >= 0"
    if value == 0 and name in ("timeout", "connect_timeout", "stall_timeout"):
        return "give a time > 0"
    return None


DEFAULT = RetryPolicy()

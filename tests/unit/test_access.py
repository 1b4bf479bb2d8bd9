"""How failed remote reads are told apart: refused access (exit 4) or unreachable (exit 3)."""

from __future__ import annotations

import pytest

from gcov_index.errors import AccessError, AuthError
from gcov_index.io.access import remote_error


@pytest.mark.parametrize("text, kind", [
    # ports, durations and request ids may hold "401" or "403": not a refusal
    ("Error performing GET http://127.0.0.1:40312/b/k in 4.031ms - Server returned non-2xx "
     "status code: 404 Not Found: <Code>NoSuchKey</Code><RequestId>A401B403</RequestId>",
     AccessError),
    ("connection refused 127.0.0.1:4013", AccessError),
    ("Server returned non-2xx status code: 401 Unauthorized: Unauthorized", AuthError),
    ("Server returned non-2xx status code: 403 Forbidden", AuthError),
    ("<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message>",
     AuthError),
    ("<Error><Code>InvalidAccessKeyId</Code></Error>", AuthError),
    ("External AWS credential provider: AuthError: https://x/s3credentials: the Earthdata "
     "token was rejected (HTTP 401)\nDebug source: ...", AuthError),
])
def test_refused_or_unreachable(text, kind):
    err = remote_error("s3://b/k", RuntimeError(text))
    assert type(err) is kind
    assert str(err).startswith("s3://b/k: ") and "\n" not in str(err)


def test_a_missing_object_is_named_so():
    try:
        raise FileNotFoundError("Object at location k not found: ... 404 Not Found")
    except FileNotFoundError as inner:
        try:
            raise RuntimeError("Reference failed to fetch target s3://b/k") from inner
        except RuntimeError as outer:
            err = remote_error("s3://b/k", outer)
    assert type(err) is AccessError and "no such object" in str(err)

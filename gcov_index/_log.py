"""Logging: the ``gcov_index`` logger tree, and secrets kept out of every record.

Each module logs to its own ``logging.getLogger(__name__)`` (taken with :func:`logger`, which
adds :func:`redacting` to it), under the ``gcov_index`` logger; the package adds only a
``NullHandler`` there (the logging HOWTO's advice for libraries), so nothing is printed unless
the application configures logging (the CLI does: ``-v``, ``-vv``, ``--quiet``).

:func:`redact` is the one function that strips secrets from text: bearer tokens, AWS secret
keys and session tokens written as ``name=value`` or ``"name": "value"``, the signing
parameters of pre-signed URLs (``X-Amz-Signature``, ``X-Amz-Credential``,
``X-Amz-Security-Token``, ``Signature``, ``Key-Pair-Id``, ``Policy``, ...), and any secret
value registered with :func:`hide` (the token and temporary keys gcov-index holds). Every
record of a gcov_index logger goes through it, whatever handler the application sets.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque

ROOT = "gcov_index"
MASK = "***"

# query parameters that sign a URL or carry a credential (lower case): AWS SigV4 and SigV2,
# CloudFront, Google Cloud Storage, Azure SAS, OAuth-style tokens
_SIGNING = ("x-amz-signature", "x-amz-credential", "x-amz-security-token", "signature",
            "awsaccesskeyid", "key-pair-id", "policy", "x-goog-signature", "x-goog-credential",
            "sig", "token", "access_token", "password")
_NAMES = "|".join(re.escape(n) for n in _SIGNING)
_QUERY_SECRET = re.compile(rf"(?i)([?&;](?:{_NAMES})=)[^&#\s'\"<>]*")
_BEARER = re.compile(r"(?i)(\bBearer\s+)[^\s'\",;]+|(\bBasic\s+)[A-Za-z0-9+/=]{8,}")
# name: value / name=value / "name": "value" of a credential (JSON, reprs, headers, env)
_KEYED_SECRET = re.compile(
    r"(?i)((?<![\w-])(?:aws_|earthdata_|x-amz-)?(?:secret[_-]?access[_-]?key|secretaccesskey"
    r"|session[_-]?token|sessiontoken|security[_-]?token|access[_-]?token|secret|token|password)"
    r"[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*)[^\s\"',&}]+")

_hidden: deque[str] = deque(maxlen=64)  # the newest secrets held; short ones never
_lock = threading.Lock()


def hide(*secrets: str | None) -> None:
    """Register secret values (a token, a secret key, a session token): :func:`redact`
    replaces them wherever they appear."""
    with _lock:
        for s in secrets:
            if s and len(s) >= 8 and s not in _hidden:
                _hidden.append(s)


def redact(text: object) -> str:
    """``text`` with every secret replaced by ``***`` (see the module's docstring)."""
    out = str(text)
    with _lock:
        hidden = list(_hidden)
    for s in hidden:
        if s in out:
            out = out.replace(s, MASK)
    out = _BEARER.sub(lambda m: f"{m.group(1) or m.group(2)}{MASK}", out)
    out = _QUERY_SECRET.sub(rf"\1{MASK}", out)
    return _KEYED_SECRET.sub(rf"\1{MASK}", out)


def redacting(record: logging.LogRecord) -> bool:
    """A logging filter: the record's message (and traceback) redacted, arguments merged."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format: the bare template, redacted, rather than no record
        message = str(record.msg)
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return True


def logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` (a module's ``__name__``, under ``gcov_index``), its records
    redacted."""
    log = logging.getLogger(name)
    if redacting not in log.filters:
        log.addFilter(redacting)
    return log


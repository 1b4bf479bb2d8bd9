"""Logging (README, "Logging"): secrets redacted from every record, the CLI's flags setting the
level of the ``gcov_index`` loggers, a NullHandler and nothing printed unless asked; hand-made
values, no servers."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

import gcov_index
from gcov_index import _log
from gcov_index._log import hide, redact
from gcov_index.cli import main
from gcov_index.io import auth

SIGV4 = ("https://bucket.s3.us-west-2.amazonaws.com/NISAR/g.h5?X-Amz-Algorithm=AWS4-HMAC-SHA256"
         "&X-Amz-Credential=ASIAEXAMPLE%2F20260101%2Fus-west-2%2Fs3%2Faws4_request"
         "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
         "&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLESESSION"
         "&X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f0")


# ---------------------------------------------------------------------------------------
# redaction


def test_a_presigned_url_keeps_where_and_when_but_not_its_signing_parameters():
    out = redact(f"redirected to {SIGV4}, valid 3600 s")
    for secret in ("ASIAEXAMPLE", "IQoJb3JpZ2luX2VjEXAMPLESESSION", "0f1e2d3c4b5a6978"):
        assert secret not in out
    assert out.count("=***") == 3
    assert "bucket.s3.us-west-2.amazonaws.com/NISAR/g.h5?" in out
    assert "X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600" in out and out.endswith("3600 s")


@pytest.mark.parametrize("url, secrets", [
    ("https://d1.cloudfront.net/g.h5?Expires=1767225600&Signature=a~b-c_d&Key-Pair-Id=APKAX",
     ["a~b-c_d", "APKAX"]),
    ("https://b.s3.amazonaws.com/g.h5?AWSAccessKeyId=AKIAOLD&Expires=1&Signature=zz%2Bzz",
     ["AKIAOLD", "zz%2Bzz"]),
    ("https://storage.googleapis.com/b/g.h5?X-Goog-Credential=sa%40x&X-Goog-Signature=beef",
     ["sa%40x", "beef"]),
    ("https://acct.blob.core.windows.net/c/g.h5?sv=2024&sig=AbC%3D", ["AbC%3D"]),
])
def test_other_signing_schemes_are_redacted(url, secrets):
    out = redact(url)
    assert not [s for s in secrets if s in out], out
    assert out.split("?")[0] == url.split("?")[0]


@pytest.mark.parametrize("text, secret", [
    ("Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.payload.sig", "eyJ0eXAi"),
    ("headers {'Authorization': 'Bearer edl-abc_DEF-123'}", "edl-abc_DEF-123"),
    ("Authorization: Basic bmlzYXItdXNlcjpodW50ZXIy", "bmlzYXItdXNlcjpodW50ZXIy"),
    (json.dumps({"accessKeyId": "ASIAK", "secretAccessKey": "NOTaSECRET/fake0KEY+example0",
                 "sessionToken": "FAKEsessionTOKEN//////////0000==", "expiration": "2026"}),
     "NOTaSECRET"),
    (json.dumps({"secretAccessKey": "x", "sessionToken": "FAKEsessionTOKEN//00=="}),
     "FAKEsessionTOKEN"),
    ("AWS_SECRET_ACCESS_KEY=NOTaSECRET AWS_SESSION_TOKEN=FAKEsess", "NOTaSECRET"),
    ("AWS_SECRET_ACCESS_KEY=NOTaSECRET AWS_SESSION_TOKEN=FAKEsess", "FAKEsess"),
    ("{'key': 'ASIAK', 'secret': 'NOTaSECRET', 'token': 'FAKEsess'}", "NOTaSECRET"),
    ("{'key': 'ASIAK', 'secret': 'NOTaSECRET', 'token': 'FAKEsess'}", "FAKEsess"),
    ("x-amz-security-token: FAKEsessionTOKEN", "FAKEsessionTOKEN"),
])
def test_tokens_and_keys_are_redacted(text, secret):
    assert secret not in redact(text)
    assert "***" in redact(text)


def test_a_secret_held_is_redacted_wherever_it_appears():
    value = "edl-" + "k3y" * 10
    assert value in redact(f"oops {value}")
    hide(value)
    assert redact(f"oops {value}, in /path/{value}") == "oops ***, in /path/***"


def test_plain_messages_are_left_as_they_are():
    for text in ("the Earthdata token was rejected (HTTP 401)", "token_source=env:EARTHDATA_TOKEN",
                 "GET https://h/NISAR/g.h5 (bytes 0-65535): 65536 bytes in 0.012 s",
                 "S3 credentials fetched from http://127.0.0.1:8/s3credentials: valid until "
                 "2026-01-01T00:00:00Z (3600 s)"):
        assert redact(text) == text


def test_every_record_of_a_module_logger_is_redacted_whatever_the_handler():
    log = _log.logger("gcov_index.tests_example")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        log.debug("resolved %s with %s", SIGV4, {"Authorization": "Bearer edl-xyz12345"})
        try:
            raise ValueError(f"refused {SIGV4}")
        except ValueError:
            log.debug("failed", exc_info=True)
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
    text = "\n".join(logging.Formatter().format(r) for r in seen)
    assert "edl-xyz12345" not in text and "0f1e2d3c" not in text and "ASIAEXAMPLE" not in text
    assert "ValueError: refused" in text and text.count("X-Amz-Signature=***") == 2


def test_the_library_adds_a_null_handler_and_prints_nothing_by_itself(capsys):
    assert any(isinstance(h, logging.NullHandler)
               for h in logging.getLogger(gcov_index.__name__).handlers)
    assert not [h for h in logging.getLogger("gcov_index").handlers
                if not isinstance(h, logging.NullHandler)]
    log = _log.logger("gcov_index.io.example")
    log.info("not asked for")
    log.debug("not asked for")
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------------
# credentials: fetches, retries and renewals logged, the secrets not


class Answer:
    def __init__(self, status: int, body: dict | None = None):
        self.status_code, self._body = status, body or {}
        self.ok, self.is_redirect, self.headers = status < 400, False, {}

    def json(self):
        return self._body


def test_a_credentials_fetch_and_its_retry_are_logged_without_the_secrets(monkeypatch, caplog):
    token, secret, session = "edl-tok" + "e" * 20, "wJalr" + "S" * 30, "FwoG" + "T" * 40
    expiry = datetime.now(UTC) + timedelta(hours=1)
    answers = [Answer(503), Answer(200, {"accessKeyId": "ASIAK", "secretAccessKey": secret,
                                         "sessionToken": session,
                                         "expiration": expiry.isoformat()})]
    monkeypatch.setattr(auth.requests, "get", lambda *a, **k: answers.pop(0))
    monkeypatch.setattr(auth.time, "sleep", lambda s: None)
    caplog.set_level(logging.DEBUG, logger="gcov_index")
    creds = auth.fetch_s3_credentials("https://nisar.example/s3credentials", token)
    assert creds.secret_access_key == secret
    lines = [r.getMessage() for r in caplog.records]
    assert any("HTTP 503" in ln for ln in lines)
    assert any("retry in 0.1 s (HTTP 503 is transient)" in ln for ln in lines)
    assert sum("GET https://nisar.example/s3credentials" in ln for ln in lines) >= 4
    for s in (token, secret, session):
        assert s not in caplog.text


def test_credential_renewals_are_logged_with_their_expiry(monkeypatch, caplog):
    lifetimes = iter([timedelta(seconds=-10), timedelta(hours=1)])  # expired: renewed

    def fetch(url, token, policy):
        return auth.S3Credentials("ASIAK", "wJalr" + "x" * 30, "FwoG" + "y" * 40,
                                  datetime.now(UTC) + next(lifetimes))

    monkeypatch.setattr(auth, "fetch_s3_credentials", fetch)
    caplog.set_level(logging.INFO, logger="gcov_index")
    provider = auth.CredentialProvider("https://nisar.example/s3credentials", "edl-t")
    provider.get()
    provider.get()
    lines = [r.getMessage() for r in caplog.records if r.name == "gcov_index.io.auth"]
    assert [ln.split(" from ")[0] for ln in lines if "valid until" in ln] == [
        "S3 credentials fetched", "S3 credentials renewed"]
    assert any(ln.startswith("S3 credentials expire at ") and "renewing" in ln for ln in lines)
    assert "wJalr" not in caplog.text and "FwoG" not in caplog.text


# ---------------------------------------------------------------------------------------
# the CLI: flags set the level; one handler, removed after the command


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A hand-made store, and ``info`` made to log one record at each level (and a library
    to log too, through the root logger and through a handler of its own)."""
    import gcov_index.read.info as info

    attrs = {"gcov_index": {"granules": [], "superseded": [], "n_chunk_refs": 0}}
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"version": 1, "refs": {
        ".zgroup": json.dumps({"zarr_format": 2}), ".zattrs": json.dumps(attrs)}}))

    class Report:
        def text(self):
            return "a report"

    def noisy(store):
        log = logging.getLogger("gcov_index.read.info")
        for level in ("debug", "info", "warning", "error"):
            getattr(log, level)(f"record at {level}")
        logging.getLogger("asyncio").error("Task was destroyed but it is pending!")
        logging.getLogger("somelib").warning("from a library's own handler")
        logging.getLogger("somelib.child").warning("from a child of that library")
        return Report()

    own = logging.getLogger("somelib")
    handler = logging.StreamHandler()  # sys.stderr as captured now
    own.addHandler(handler)
    monkeypatch.setattr(info, "store_info", noisy)
    monkeypatch.delenv("GCOV_INDEX_DEBUG", raising=False)
    yield str(path)
    own.removeHandler(handler)


@pytest.mark.parametrize("flags, shown", [
    ([], ["warning", "error"]),
    (["-v"], ["info", "warning", "error"]),
    (["--verbose"], ["info", "warning", "error"]),
    (["-vv"], ["debug", "info", "warning", "error"]),
    (["-v", "-v", "-v"], ["debug", "info", "warning", "error"]),
    (["--quiet"], ["error"]),
    (["-q"], ["error"]),
])
def test_the_flags_choose_what_is_printed(store, flags, shown, capsys):
    root_handlers = list(logging.root.handlers)
    assert main(["info", store, *flags]) == 0
    out, err = capsys.readouterr()
    assert out == "a report\n"
    lines = err.splitlines()
    assert [ln.split(":")[1].strip() for ln in lines] == shown, err
    for ln in lines:
        assert ln.startswith(f"gcov-index: {ln.split(':')[1].strip()}: ")
        assert ln.endswith(f"record at {ln.split(':')[1].strip()}")
    if "debug" in shown:  # with when and where
        assert "s gcov_index.read.info] record at debug" in err
    # set for the command only
    assert logging.root.handlers == root_handlers
    assert logging.getLogger("gcov_index").level == logging.NOTSET
    assert not logging.getLogger("somelib").handlers[0].filters


def test_debug_env_lets_the_libraries_records_through(store, capsys, monkeypatch):
    monkeypatch.setenv("GCOV_INDEX_DEBUG", "1")
    assert main(["info", store]) == 0
    err = capsys.readouterr().err
    assert "Task was destroyed" in err and "from a library's own handler" in err
    assert "from a child of that library" in err
    assert "record at warning" in err and "record at info" not in err


def test_an_error_is_one_line_whatever_the_level(store, capsys, monkeypatch):
    import gcov_index.read.info as info
    from gcov_index.errors import AccessError

    def failing(store):
        logging.getLogger("gcov_index.read.info").debug("GET %s", SIGV4)
        raise AccessError(f"{store}: unreachable (HTTP 503)")

    monkeypatch.setattr(info, "store_info", failing)
    assert main(["info", store, "-vv"]) == 3
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(":")[1] for ln in lines] == [" debug", " error"]
    assert lines[1] == f"gcov-index: error: {store}: unreachable (HTTP 503)"
    assert "X-Amz-Signature=***" in lines[0] and "0f1e2d3c" not in lines[0]


def test_verbose_and_quiet_together_are_refused(store, capsys):
    assert main(["info", store, "-v", "--quiet"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("gcov-index: error: argument -q/--quiet: not allowed with")


@pytest.mark.parametrize("command", ["search", "build", "subset", "validate", "info"])
def test_every_command_takes_the_flags(command):
    from gcov_index.cli import parser

    sub = parser()._subparsers._group_actions[0].choices[command]
    options = {o for a in sub._actions for o in a.option_strings}
    assert {"-v", "--verbose", "-q", "--quiet"} <= options


def test_build_shows_a_progress_bar_only_without_flags(monkeypatch):
    import sys
    from types import SimpleNamespace

    from gcov_index import cli

    monkeypatch.setattr(cli, "_tty", lambda stream: stream is sys.stderr)
    assert cli._progress(SimpleNamespace(quiet=False, verbose=0))
    assert not cli._progress(SimpleNamespace(quiet=True, verbose=0))
    assert not cli._progress(SimpleNamespace(quiet=False, verbose=1))

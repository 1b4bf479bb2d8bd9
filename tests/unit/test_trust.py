"""Where the token may go, the retry policy, and how a failed read is told from bad bytes
(hand-made values: no server; tests/test_trust_network.py tests the same on the wire)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from gcov_index.errors import AccessError, AuthError, BadInputError
from gcov_index.io.access import Access, failure_kind, open_reader, read_failure, remote_error
from gcov_index.io.endpoints import PROD, Endpoints, is_loopback
from gcov_index.io.retry import ENV_VARS, RetryPolicy

LOCAL = Endpoints(https_base="http://127.0.0.1:4000/NISAR",
                  s3_credentials_url="http://127.0.0.1:4000/s3credentials",
                  edl_url="http://127.0.0.1:4000", s3_endpoint="http://127.0.0.1:4001",
                  trusted_hosts="data.example.org, 127.0.0.2:81, [::1]:5")


# -- where the token may go -------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "https://nisar.asf.earthdatacloud.nasa.gov/NISAR/C/g/g.h5",  # https_base
    "https://NISAR.asf.earthdatacloud.nasa.gov:443/NISAR/C/g/g.h5",  # the same host, spelt out
    "https://nisar.asf.earthdatacloud.nasa.gov/s3credentials",
    "https://urs.earthdata.nasa.gov/api/users/find_or_create_token",
])
def test_the_token_goes_to_nasas_hosts_over_https(url):
    assert PROD.token_refusal(url) is None


@pytest.mark.parametrize("url, why", [
    ("https://example.org/NISAR/g.h5", "example.org is not a trusted host"),
    ("https://nisar.asf.earthdatacloud.nasa.gov:8443/g.h5", "earthdatacloud.nasa.gov:8443 is not"),
    ("http://nisar.asf.earthdatacloud.nasa.gov/NISAR/g.h5", "over plain http"),
    ("https://nisar.asf.earthdatacloud.nasa.gov.example.org/g.h5", "is not a trusted host"),
    ("https://a:b@nisar.asf.earthdatacloud.nasa.gov/g.h5", "not a plain host"),  # user info
    ("https://example.org\\@nisar.asf.earthdatacloud.nasa.gov/g.h5", "not a plain host"),
    ("https://example.org%2F@nisar.asf.earthdatacloud.nasa.gov/g.h5", "not a plain host"),
    ("s3://sds-n-cumulus-prod-nisar-products/g.h5", "not an https URL"),
    ("ftp://nisar.asf.earthdatacloud.nasa.gov/g.h5", "not an https URL"),
])
def test_any_other_host_or_scheme_is_refused_the_token(url, why):
    refusal = PROD.token_refusal(url)
    assert refusal is not None and why in refusal


@pytest.mark.parametrize("url, sent", [
    ("http://127.0.0.1:4000/NISAR/g.h5", True),  # the local stand-ins: loopback, configured
    ("http://127.0.0.1:4001/bucket/g.h5", False),  # the S3 endpoint gets S3 keys, not the token
    ("http://127.0.0.1:4002/g.h5", False),  # loopback, but another port: another host
    ("http://127.0.0.2:4000/g.h5", False),
    ("http://localhost:4000/g.h5", False),  # another name: not what was configured
    ("https://data.example.org/g.h5", True),  # trusted by name, any port
    ("https://data.example.org:8443/g.h5", True),
    ("http://data.example.org/g.h5", False),  # trusted, but never over plain http
    ("http://127.0.0.2:81/g.h5", True),
    ("http://127.0.0.2:82/g.h5", False),
    ("http://[::1]:5/g.h5", True),
])
def test_configured_and_trusted_hosts(url, sent):
    assert (LOCAL.token_refusal(url) is None) is sent
    assert Access(endpoints=LOCAL, token="t").sends_token_to(url) is sent


def test_the_refusal_says_how_to_trust_a_host():
    assert LOCAL.token_refusal("http://127.0.0.1:4002/x") == (
        "127.0.0.1:4002 is not a trusted host (to trust it, add it to GCOV_INDEX_TRUSTED_HOSTS)")


def test_trusted_hosts_from_the_environment_and_back():
    e = Endpoints.from_env(environ={"GCOV_INDEX_TRUSTED_HOSTS": " a.example , ,b.example:8443"})
    assert e.trusted_hosts == ("a.example", "b.example:8443")
    assert e.env()["GCOV_INDEX_TRUSTED_HOSTS"] == "a.example,b.example:8443"
    assert "GCOV_INDEX_TRUSTED_HOSTS" not in PROD.env()
    assert Endpoints(trusted_hosts=["x.example"]) == Endpoints(trusted_hosts="x.example")


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("127.9.8.7", True), ("::1", True),
                                        ("[::1]", True), ("localhost", True), ("LOCALHOST", True),
                                        ("128.0.0.1", False), ("example.org", False), ("", False),
                                        ("127.0.0.1.example.org", False)])
def test_loopback(host, loop):
    assert is_loopback(host) is loop


def test_a_route_carries_the_token_only_to_a_trusted_host():
    access = Access(endpoints=LOCAL, token="the-token")
    trusted, _ = access.route("http://127.0.0.1:4000/NISAR/C/g/g.h5")
    other, path = access.route("http://127.0.0.2:4000/NISAR/C/g/g.h5")
    assert trusted.client_options["default_headers"] == {"authorization": b"Bearer the-token"}
    assert "default_headers" not in other.client_options and path == "NISAR/C/g/g.h5"
    assert access.route("http://127.0.0.2:4000/a%20b/g.h5")[1] == "a b/g.h5"  # obstore encodes
    assert "the-token" not in repr(trusted) + repr(access)
    with pytest.raises(AccessError, match="not an S3 bucket name"):
        access.route("s3://Bad_Bucket/k.h5")
    with pytest.raises(AccessError, match="unsupported URL"):
        access.route("ftp://127.0.0.1:4000/k.h5")


def test_no_token_is_needed_for_an_untrusted_host():
    access = Access(endpoints=LOCAL, token=None)
    access.route("http://127.0.0.2:4000/g.h5")  # read without credentials: nothing to miss
    with pytest.raises(AuthError, match="no Earthdata token"):
        access.route("http://127.0.0.1:4000/NISAR/g.h5")


# -- the retry policy -------------------------------------------------------------------------
def test_retry_policy_defaults_and_what_obstore_gets():
    p = RetryPolicy()
    assert p.retries == 5 and p.stall_timeout == 20 and p.timeout == 120
    assert p.obstore_retry() == {"max_retries": 5, "retry_timeout": timedelta(seconds=180),
                                 "backoff": {"init_backoff": timedelta(seconds=0.1),
                                             "max_backoff": timedelta(seconds=5), "base": 2}}
    client = p.obstore_client(allow_http=True)
    assert client["read_timeout"] == timedelta(seconds=20) and client["allow_http"] is True
    assert "allow_http" not in p.obstore_client()
    assert p.delays() == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert RetryPolicy(retries=0).delays() == []


def test_retry_policy_from_the_environment():
    env = {ENV_VARS["retries"]: "8", ENV_VARS["stall_timeout"]: "0.5", ENV_VARS["timeout"]: " "}
    p = RetryPolicy.from_env(env, backoff=1.0, max_backoff=None)
    assert (p.retries, p.stall_timeout, p.backoff, p.timeout) == (8, 0.5, 1.0, 120.0)
    assert RetryPolicy.from_env({}) == RetryPolicy()
    assert set(ENV_VARS) == {f.name for f in dataclasses.fields(RetryPolicy)}


@pytest.mark.parametrize("var, value, expect", [
    ("GCOV_INDEX_RETRIES", "many", "GCOV_INDEX_RETRIES='many': give a whole number"),
    ("GCOV_INDEX_RETRIES", "2.5", "whole number"),
    ("GCOV_INDEX_RETRIES", "-1", "whole number >= 0"),
    ("GCOV_INDEX_TIMEOUT", "0", "GCOV_INDEX_TIMEOUT='0': give a time > 0"),
    ("GCOV_INDEX_STALL_TIMEOUT", "nan", "number of seconds"),
    ("GCOV_INDEX_RETRY_BACKOFF", "inf", "number of seconds"),
])
def test_bad_retry_settings_are_one_line_naming_the_variable(var, value, expect):
    with pytest.raises(BadInputError) as e:
        RetryPolicy.from_env({var: value})
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_access_takes_the_policy_from_the_environment(monkeypatch):
    monkeypatch.setenv("GCOV_INDEX_RETRIES", "9")
    assert Access.from_env(token="t").retry.retries == 9
    assert Access.from_env(token="t", retry=RetryPolicy(retries=1)).retry.retries == 1
    assert Access().retry == RetryPolicy()


# -- a failed read, or bad bytes ---------------------------------------------------------------
def obstore_error(text: str):
    from obstore.exceptions import GenericError

    return GenericError(text)


SLOWDOWN = ("Generic S3 error: Error performing GET http://127.0.0.1:9/b/k in 3ms, after 5 "
            "retries, max_retries: 5, retry_timeout: 180s  - Server returned non-2xx status "
            "code: 503 Service Unavailable: <?xml version=\"1.0\"?><Error><Code>SlowDown</Code>"
            "<Message>Please reduce your request rate.</Message></Error>")


@pytest.mark.parametrize("exc, kind", [
    (obstore_error(SLOWDOWN), "unreachable"),
    (obstore_error("Generic HTTP error: HTTP error: request or response body error"),
     "unreachable"),
    (ConnectionResetError("reset"), "unreachable"),
    (TimeoutError("timed out"), "unreachable"),
    (FileNotFoundError("Object at location k not found"), "missing"),
    (obstore_error("Server returned non-2xx status code: 403 Forbidden"), "refused"),
    (AuthError("x: the Earthdata token was rejected (HTTP 401)"), "refused"),
    (AccessError("x: unreachable"), "unreachable"),
    # the bytes arrived; what they hold is wrong: not a failed read
    (OSError("Unable to synchronously open file (file signature not found)"), None),
    (ValueError("error during decompression"), None),
    (KeyError("science/LSAR/GCOV"), None),
])
def test_failure_kind(exc, kind):
    assert failure_kind(exc) == kind


def test_a_wrapped_failure_is_found_in_the_chain():
    from fsspec.implementations.reference import ReferenceNotReachable

    try:
        try:
            raise obstore_error(SLOWDOWN)
        except Exception as inner:
            raise ReferenceNotReachable("a/0.0", "s3://b/k") from inner
    except Exception as outer:
        err = read_failure("store.json: reading a", outer)
    assert type(err) is AccessError and err.kind == "unreachable"
    assert str(err) == ("store.json: reading a: unreachable (GET failed after 5 retries: "
                        "HTTP 503 Service Unavailable (SlowDown))")


def test_the_reader_knows_a_failed_read_whatever_h5py_made_of_it():
    class Failing:
        def head(self, path):
            raise ConnectionResetError("connection reset by peer")

    reader = open_reader(Failing(), "g.h5", "s3://b/g.h5")
    with pytest.raises(ConnectionResetError):
        reader.read(8)
    # h5py may report it as a bad file: the reader's record decides
    err = read_failure("s3://b/g.h5", OSError("Unable to open file (truncated file)"), reader)
    assert type(err) is AccessError and "unreachable (connection reset by peer)" in str(err)
    assert read_failure("x", OSError("Unable to open file (truncated file)")) is None


def test_a_short_page_is_a_failed_read_not_a_short_file():
    class Short:
        def head(self, path):
            return {"size": 100}

        def get_ranges(self, path, starts, lengths):
            return [b"x" * (n - 1) for n in lengths]

    reader = open_reader(Short(), "g.h5", "s3://b/g.h5")
    with pytest.raises(AccessError, match=r"s3://b/g.h5: unreachable \(short read: 99 of 100"):
        reader.read(8)
    assert failure_kind(reader.failure) == "unreachable"


def test_a_refusal_by_an_untrusted_host_says_the_token_was_not_sent():
    access = Access(endpoints=LOCAL, token="t")
    access.route("http://127.0.0.9:7777/NISAR/g.h5")
    err = remote_error("http://127.0.0.9:7777/NISAR/g.h5", obstore_error(
        "Error performing GET http://127.0.0.9:7777/NISAR/g.h5 in 1ms - Server returned "
        "non-2xx status code: 401 Unauthorized: Unauthorized"))
    assert type(err) is AuthError and err.kind == "refused"
    assert "the Earthdata token was not sent: 127.0.0.9:7777 is not a trusted host" in str(err)
    assert "GCOV_INDEX_TRUSTED_HOSTS" in str(err)


def test_an_error_line_never_quotes_a_presigned_query():
    """After a redirect, obstore's errors name the pre-signed URL: its query holds a key id and
    a session token, which must not reach a terminal or a log."""
    from gcov_index.io.access import remote_error

    err = remote_error("https://nisar.example/x.h5", OSError(
        "GET https://bucket.s3.example/x.h5?X-Amz-Credential=AKIAX&X-Amz-Security-Token=SECRET"
        " failed: connection reset"))
    assert "SECRET" not in str(err) and "AKIAX" not in str(err)
    assert "https://bucket.s3.example/x.h5?..." in str(err)

"""Earthdata Login token discovery and NISAR temporary S3 credentials.

The token, from the first of these that gives one (:data:`TOKEN_SOURCES`): an explicit value, a
token file, ``EARTHDATA_TOKEN``, an earthaccess login of this process (``earthaccess.login()``,
any of its strategies), ``EARTHDATA_USERNAME`` + ``EARTHDATA_PASSWORD`` (earthaccess's
"environment" login), or a ``~/.netrc`` entry for Earthdata Login (earthaccess's "netrc"); a
login is exchanged for a token at ``{edl}/api/users/find_or_create_token``, as earthaccess does. No token or credential is ever logged or written anywhere, and neither the
token nor a login is sent over plain http, except to a loopback address (the local stand-ins).
Redirects are not followed with the token: requests drops the ``Authorization`` header on a
redirect to another host, and the ``s3credentials`` request does not follow redirects at all.
"""

from __future__ import annotations

import netrc
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from .._log import hide, logger
from .._time import iso_utc, utc
from ..errors import AccessError, AuthError
from .endpoints import PROD, is_loopback
from .retry import DEFAULT, RetryPolicy

TIMEOUT = 30
log = logger(__name__)
TRANSIENT_STATUS = {429, 500, 502, 503, 504}


class BearerAuth(requests.auth.AuthBase):
    """The token as a requests auth object: a plain ``Authorization`` header would be replaced
    by requests with ~/.netrc Basic auth whenever a netrc entry matches the host."""

    def __init__(self, token: str):
        self._token = token
        hide(token)  # never in a log record

    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r


# where find_token looks, in order; the README's "Earthdata Login" table says the same
TOKEN_SOURCES = ("argument", "file", "env:EARTHDATA_TOKEN", "earthaccess", "env-login", "netrc")


def find_token(token: str | None = None, token_file: str | Path | None = None,
               edl_url: str = PROD.edl_url) -> str | None:
    """The Earthdata Login bearer token, or None when none is configured."""
    return find_token_and_source(token, token_file, edl_url)[0]


def find_token_and_source(token: str | None = None, token_file: str | Path | None = None,
                          edl_url: str = PROD.edl_url) -> tuple[str | None, str | None]:
    """The token and where it came from (one of :data:`TOKEN_SOURCES`, ``file:PATH`` for a
    file), or ``(None, None)``. A login (``EARTHDATA_USERNAME``/``EARTHDATA_PASSWORD``, or a
    ``~/.netrc`` entry for ``edl_url``'s host) is exchanged for a token there."""
    if token:
        return token.strip(), "argument"
    if token_file:
        path = Path(token_file).expanduser()
        try:
            text = path.read_text().strip()
        except OSError as e:
            raise AuthError(f"{path}: cannot read the token file ({e.strerror})") from None
        if not text:
            raise AuthError(f"{path}: the token file is empty")
        return text, f"file:{token_file}"
    if os.environ.get("EARTHDATA_TOKEN", "").strip():
        return os.environ["EARTHDATA_TOKEN"].strip(), "env:EARTHDATA_TOKEN"
    found = _token_from_earthaccess(edl_url)
    if found:
        return found, "earthaccess"
    user, password = os.environ.get("EARTHDATA_USERNAME"), os.environ.get("EARTHDATA_PASSWORD")
    if user and password:
        return _exchange(edl_url, user, password, "EARTHDATA_USERNAME/EARTHDATA_PASSWORD"), \
            "env-login"
    found = _token_from_netrc(edl_url)
    return (found, "netrc") if found else (None, None)


def _token_from_earthaccess(edl_url: str) -> str | None:
    """The token of an ``earthaccess.login()`` made in this process against ``edl_url``'s
    host. earthaccess is not imported here: a process that has not imported it has not
    logged in with it (its logins are not kept across processes; its "netrc" and
    "environment" strategies are read here directly)."""
    earthaccess = sys.modules.get("earthaccess")
    if earthaccess is None:
        return None
    try:
        auth = earthaccess.__auth__
        host = auth.system.edl_hostname
        token = (auth.token or {}).get("access_token") if auth.authenticated else None
    except Exception:  # another earthaccess than the one this was written for: not a login
        return None
    if not token or host != (requests.utils.urlparse(edl_url).netloc or ""):
        return None
    return str(token).strip() or None


def _plain_http(url: str) -> bool:
    """A secret must not go to ``url``: plain http to a host that is not loopback."""
    parsed = requests.utils.urlparse(url)
    return parsed.scheme != "https" and not (parsed.scheme == "http"
                                             and is_loopback(parsed.hostname))


def _token_from_netrc(edl_url: str) -> str | None:
    host = requests.utils.urlparse(edl_url).hostname or ""
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(host)
    except (FileNotFoundError, netrc.NetrcParseError):
        return None
    if not entry:
        return None
    login, _, password = entry
    return _exchange(edl_url, login, password or "", f"the ~/.netrc login for {host}")


def _exchange(edl_url: str, login: str, password: str, what: str) -> str:
    """A login exchanged for a token at Earthdata Login (``find_or_create_token``)."""
    url = edl_url.rstrip("/") + "/api/users/find_or_create_token"
    if _plain_http(url):
        raise AuthError(f"{url}: not https; {what} is sent over https only (or to a loopback "
                        "address)")
    hide(password)
    log.debug("POST %s: %s exchanged for a token", url, what)
    started = time.monotonic()
    try:
        r = requests.post(url, auth=(login, password), timeout=TIMEOUT)
    except requests.RequestException as e:
        log.debug("POST %s failed after %.3f s: %s", url, time.monotonic() - started,
                  type(e).__name__)
        raise AccessError(f"{url}: Earthdata Login is unreachable ({type(e).__name__})") from None
    log.debug("POST %s: HTTP %s in %.3f s", url, r.status_code, time.monotonic() - started)
    if r.status_code in (401, 403):
        raise AuthError(f"{url}: Earthdata Login rejected {what}")
    if not r.ok:
        raise AuthError(f"{url}: Earthdata Login answered HTTP {r.status_code}")
    try:
        token = r.json()["access_token"]
    except (ValueError, KeyError, TypeError):
        raise AuthError(f"{url}: Earthdata Login answered something else than a token") \
            from None
    hide(token)
    log.info("Earthdata token obtained with %s", what)
    return token


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime

    def as_obstore(self) -> dict:
        return {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key,
                "token": self.session_token, "expires_at": self.expiration}

    def as_s3fs(self) -> dict:
        return {"key": self.access_key_id, "secret": self.secret_access_key,
                "token": self.session_token}


def _parse_expiration(text: str) -> datetime:
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def fetch_s3_credentials(url: str, token: str | None,
                         policy: RetryPolicy = DEFAULT) -> S3Credentials:
    """Ask the Earthdata ``s3credentials`` endpoint for temporary credentials; transient
    failures (connection errors, timeouts, 5xx, 429) are retried under ``policy``."""
    if not token:
        raise AuthError(
            f"{url}: no Earthdata token; set EARTHDATA_TOKEN, pass --token-file, or add "
            "urs.earthdata.nasa.gov to ~/.netrc")
    if _plain_http(url):
        raise AuthError(f"{url}: not https; the Earthdata token is sent over https only (or to "
                        "a loopback address)")
    waits = iter(policy.delays())
    tries = 0
    while True:
        tries += 1
        started = time.monotonic()
        log.debug("GET %s: temporary S3 credentials (try %d)", url, tries)
        try:
            r = requests.get(url, auth=BearerAuth(token), timeout=policy.requests_timeout,
                             allow_redirects=False)
        except requests.RequestException as e:
            wait = next(waits, None)
            log.debug("GET %s failed after %.3f s: %s%s", url, time.monotonic() - started,
                      type(e).__name__, "" if wait is None else f"; retry in {wait:g} s")
            if wait is None:
                raise AccessError(f"{url}: credentials endpoint unreachable "
                                  f"({type(e).__name__}, after {policy.retries} retries)") from None
            time.sleep(wait)
            continue
        log.debug("GET %s: HTTP %s in %.3f s", url, r.status_code, time.monotonic() - started)
        if r.status_code in TRANSIENT_STATUS:
            wait = next(waits, None)
            if wait is not None:
                log.debug("GET %s: retry in %g s (HTTP %s is transient)", url, wait,
                          r.status_code)
                time.sleep(wait)
                continue
        break
    if r.status_code in (401, 403):
        raise AuthError(f"{url}: the Earthdata token was rejected (HTTP {r.status_code})")
    if r.is_redirect:  # the real endpoint sends a bad token to the login page
        where = requests.utils.urlparse(r.headers.get("Location", "")).hostname or "elsewhere"
        raise AuthError(f"{url}: redirected to {where} (HTTP {r.status_code}, not followed; a "
                        "login page? the Earthdata token was not accepted)")
    if not r.ok:
        raise AccessError(f"{url}: credentials endpoint answered HTTP {r.status_code}")
    try:
        d = r.json()
        hide(d.get("secretAccessKey"), d.get("sessionToken"))
        creds = S3Credentials(d["accessKeyId"], d["secretAccessKey"], d["sessionToken"],
                              _parse_expiration(d["expiration"]))
    except (ValueError, KeyError, TypeError):
        raise AccessError(f"{url}: credentials endpoint answered something else than "
                          "temporary credentials") from None
    return creds


class CredentialProvider:
    """Temporary S3 credentials that renew themselves ``margin`` before they expire.

    Callable as an obstore ``credential_provider``; thread-safe; fetches lazily.
    """

    def __init__(self, url: str, token: str | None, margin: timedelta = timedelta(seconds=60),
                 policy: RetryPolicy = DEFAULT):
        self.url = url
        self._token = token
        self.margin = margin
        self.policy = policy
        self._refused: AuthError | None = None  # a rejected token stays rejected
        self._lock = threading.Lock()
        self._current: S3Credentials | None = None
        self._lifetime = timedelta(hours=1)  # of the last credentials fetched
        self.fetches = 0

    def get(self) -> S3Credentials:
        with self._lock:
            if self._refused is not None:  # asked once: every chunk read would ask again
                raise AuthError(str(self._refused))
            now = datetime.now(UTC)
            c = self._current
            lifetime = (c.expiration - now) if c else timedelta(0)
            # renew when less than `margin` (or a fifth of a short lifetime) is left
            if c is None or lifetime <= min(self.margin, self._lifetime / 5):
                if c is not None:
                    log.info("S3 credentials expire at %s: renewing them",
                             iso_utc(c.expiration, "seconds"))
                try:
                    self._current = c = fetch_s3_credentials(self.url, self._token, self.policy)
                except AuthError as e:
                    self._refused = e
                    raise
                self._lifetime = c.expiration - datetime.now(UTC)
                self.fetches += 1
                log.info("S3 credentials %s from %s: valid until %s (%d s)",
                         "renewed" if self.fetches > 1 else "fetched", self.url,
                         iso_utc(c.expiration, "seconds"), self._lifetime.total_seconds())
            return c

    def __call__(self) -> dict:
        creds = self.get().as_obstore()
        # ask again a little before the real expiry, so no request carries a dying key
        creds["expires_at"] = creds["expires_at"] - min(self.margin, self._lifetime / 5)
        return creds

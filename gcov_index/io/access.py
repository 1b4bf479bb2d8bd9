"""Where bytes come from: local files, S3 (endpoint, temporary credentials that renew) and HTTPS
(bearer token). Everything else in gcov-index takes an ``Access`` and never sees a secret.

- S3 endpoint: the standard ``AWS_ENDPOINT_URL`` (or ``s3_endpoint=``); none means AWS.
- Earthdata token: see :func:`gcov_index.io.auth.find_token`.
- Temporary S3 credentials: ``GET {credentials_url}`` with the token (default NISAR's).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from obstore.store import HTTPStore, LocalStore, S3Store

from ..errors import AccessError, AuthError, first_line
from .auth import NISAR_S3_CREDENTIALS_URL, CredentialProvider, find_token

HTTPS_BASE = "https://nisar.asf.earthdatacloud.nasa.gov/NISAR"
S3_BUCKET = "sds-n-cumulus-prod-nisar-products"
REGION = "us-west-2"
RETRY = {"max_retries": 2, "backoff": {"init_backoff": timedelta(milliseconds=100),
                                      "max_backoff": timedelta(seconds=1), "base": 2},
         "retry_timeout": timedelta(seconds=15)}


# what a refusal looks like in obstore's / fsspec's messages; whole words only, since the
# same text holds ports, durations and request ids that may contain "401" or "403"
_REFUSED = re.compile(r"\b(?:401|403) (?:Unauthorized|Forbidden)\b|status(?: code)?:? (?:401|403)\b"
                      r"|\b(?:ExpiredToken|InvalidAccessKeyId|InvalidToken|AccessDenied"
                      r"|SignatureDoesNotMatch|Unauthenticated|token was rejected)\b")


def remote_error(what: str, exc: BaseException) -> AccessError:
    """One clear error for a failed remote read: AuthError when access was refused (a
    rejected token, expired or unknown credentials), AccessError otherwise."""
    if isinstance(exc, AccessError):
        return exc
    chain, e = [], exc
    while e is not None and len(chain) < 5:  # the reason may sit in a wrapped exception
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, AccessError):
            return type(e)(f"{what}: {e}")
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, FileNotFoundError) for e in chain) and not _REFUSED.search(text):
        missing = next(e for e in chain if isinstance(e, FileNotFoundError))
        return AccessError(f"{what}: no such object ({str(missing).splitlines()[0][:200]})")
    for cls in (AuthError, AccessError):  # ours, raised inside obstore's credential callback
        marker = f"{cls.__name__}: "
        if marker in text:
            return cls(f"{what}: {text.split(marker, 1)[1].splitlines()[0]}")
    first = next((first_line(e, 200) for e in chain if str(e).strip()), type(exc).__name__)
    if _REFUSED.search(text):
        return AuthError(f"{what}: access refused ({first})")
    return AccessError(f"{what}: unreachable ({first})")


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> Path:
    return Path(urlparse(url).path if url.startswith("file://") else url).expanduser().resolve()


def canonical_url(url: str) -> str:
    """Local paths become absolute ``file://`` URLs; remote URLs are kept as given."""
    return local_path(url).as_uri() if is_local(url) else url


@dataclass
class Access:
    """How to reach granules: one per build or open, holding credentials in memory only."""

    s3_endpoint: str | None = None
    token: str | None = field(default=None, repr=False)
    credentials_url: str = NISAR_S3_CREDENTIALS_URL
    https_base: str = HTTPS_BASE
    s3_bucket: str = S3_BUCKET
    region: str = REGION
    _provider: CredentialProvider | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_options(cls, *, token: str | None = None, token_file: str | None = None,
                     s3_endpoint: str | None = None, credentials_url: str | None = None,
                     https_base: str | None = None) -> Access:
        env = os.environ
        return cls(
            s3_endpoint=s3_endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
            token=find_token(token, token_file),
            credentials_url=credentials_url or env.get("GCOV_INDEX_S3CREDENTIALS_URL")
            or NISAR_S3_CREDENTIALS_URL,
            https_base=https_base or env.get("GCOV_INDEX_HTTPS_BASE") or HTTPS_BASE,
        )

    # -- credentials -------------------------------------------------------------------------
    @property
    def credentials(self) -> CredentialProvider:
        if self._provider is None:
            self._provider = CredentialProvider(self.credentials_url, self.token)
        return self._provider

    def _s3_config(self) -> dict:
        config = {"region": self.region}
        if self.s3_endpoint:
            config["endpoint"] = self.s3_endpoint
        return config

    def _client_options(self, url: str) -> dict:
        options = {"timeout": timedelta(seconds=60), "connect_timeout": timedelta(seconds=10)}
        if url.startswith("http://") or (self.s3_endpoint or "").startswith("http://"):
            options["allow_http"] = True
        return options

    def _bearer(self, url: str) -> dict:
        if not self.token:
            raise AuthError(f"{url}: no Earthdata token for HTTPS; set EARTHDATA_TOKEN, pass "
                            "--token-file, or add urs.earthdata.nasa.gov to ~/.netrc")
        return {"Authorization": f"Bearer {self.token}"}

    # -- obstore (scan, validate) -------------------------------------------------------------
    def object_store(self, url: str):
        """``(obstore store, path inside it)`` for a local path or an s3/http(s) URL."""
        if is_local(url):
            path = local_path(url)
            if not path.is_file():
                raise AccessError(f"{url}: no such file")
            return LocalStore(str(path.parent)), path.name
        parsed = urlparse(url)
        if parsed.scheme == "s3":
            self.credentials.get()  # fail early, with a clear message, on a bad token
            store = S3Store(parsed.netloc, config=self._s3_config(),
                            client_options=self._client_options(url), retry_config=RETRY,
                            credential_provider=self.credentials)
            return store, parsed.path.lstrip("/")
        if parsed.scheme in ("http", "https"):
            base, _, name = url.rpartition("/")
            options = self._client_options(url) | {"default_headers": self._bearer(url)}
            return HTTPStore.from_url(base, client_options=options, retry_config=RETRY), name
        raise AccessError(f"{url}: unsupported URL scheme {parsed.scheme!r} (use a path, s3:// or https://)")

    # -- fsspec (reading a reference store) -----------------------------------------------------
    def remote_filesystem(self, protocol: str):
        """An async fsspec file system for chunk reads, credentials renewing as they expire."""
        from obstore.fsspec import FsspecStore

        if protocol == "s3":
            return FsspecStore("s3", config=self._s3_config(), client_options=self._client_options(
                self.s3_endpoint or ""), retry_config=RETRY, credential_provider=self.credentials,
                asynchronous=True)
        if protocol in ("http", "https"):
            return FsspecStore(protocol, client_options=self._client_options(self.https_base)
                               | {"default_headers": self._bearer(self.https_base)},
                               retry_config=RETRY, asynchronous=True)
        raise AccessError(f"unsupported protocol {protocol!r} (use s3 or https)")

    def s3fs_options(self) -> dict:
        """``remote_options`` for plain fsspec/s3fs users (credentials valid for one hour)."""
        options = {"client_kwargs": {"region_name": self.region}} | self.credentials.get().as_s3fs()
        if self.s3_endpoint:
            options["endpoint_url"] = self.s3_endpoint
        return options

    # -- URLs ---------------------------------------------------------------------------------
    def to_https(self, url: str) -> str:
        """``s3://bucket/<collection>/<stem>/<stem>.h5`` -> ``{https_base}/<collection>/...``"""
        parsed = urlparse(url)
        if parsed.scheme != "s3":
            return url
        return f"{self.https_base.rstrip('/')}/{parsed.path.lstrip('/')}"

    def to_s3(self, url: str) -> str:
        base = self.https_base.rstrip("/") + "/"
        if not url.startswith(base):
            return url
        return f"s3://{self.s3_bucket}/{url[len(base):]}"

"""Where bytes come from: local files, S3 (endpoint, temporary credentials that renew) and HTTPS
(bearer token). Everything else in gcov-index takes an ``Access`` and never sees a secret.

Where the archive is comes from one :class:`~gcov_index.io.endpoints.Endpoints` value (NASA's
by default, or ``Endpoints.from_env()``); the Earthdata token from
:func:`gcov_index.io.auth.find_token`; temporary S3 credentials from
``GET {endpoints.s3_credentials_url}`` with the token, renewed before they expire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from obspec_utils.readers import BlockStoreReader
from obstore.store import HTTPStore, LocalStore, S3Store

from ..errors import AccessError, AuthError, first_line
from .auth import CredentialProvider, find_token
from .endpoints import PROD, Endpoints

# HDF5 reads go through a cache of 4 MiB blocks: the product's file-space page size, so one
# block holds one metadata page (shared/gcov-product.md)
PAGE = 4 * 1024 * 1024
CACHED_PAGES = 64
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
    return Path(url.removeprefix("file://")).expanduser().resolve()  # not %-decoded: as fsspec


def canonical_url(url: str) -> str:
    """Local paths become absolute ``file://`` URLs, the path as is (not %-encoded: fsspec, which
    reads the store, takes ``file://a b/100%`` literally); remote URLs are kept as given."""
    return f"file://{local_path(url).as_posix()}" if is_local(url) else url


def open_reader(store, path: str) -> BlockStoreReader:
    """A file-like reader of ``path`` in an obstore ``store`` for h5py, caching 4 MiB pages."""
    return BlockStoreReader(store, path, block_size=PAGE, max_cached_blocks=CACHED_PAGES)


@dataclass
class Access:
    """How to reach granules: the archive's endpoints and the Earthdata token, held in memory
    only. ``Access.from_env()`` finds both as the CLI does."""

    endpoints: Endpoints = PROD
    token: str | None = field(default=None, repr=False)
    _provider: CredentialProvider | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_env(cls, *, token: str | None = None, token_file: str | None = None,
                 endpoints: Endpoints | None = None, **endpoint_overrides) -> Access:
        """Endpoints from ``endpoints`` or the environment (with ``endpoint_overrides``, e.g.
        ``s3_endpoint=``), and the token from :func:`~gcov_index.io.auth.find_token`."""
        endpoints = (endpoints or Endpoints.from_env()).with_(**endpoint_overrides)
        return cls(endpoints=endpoints,
                   token=find_token(token, token_file, edl_url=endpoints.edl_url))

    @property
    def https_base(self) -> str:
        return self.endpoints.https_base

    # -- credentials -------------------------------------------------------------------------
    @property
    def credentials(self) -> CredentialProvider:
        if self._provider is None:
            self._provider = CredentialProvider(self.endpoints.s3_credentials_url, self.token)
        return self._provider

    def _s3_config(self) -> dict:
        config = {"region": self.endpoints.region}
        if self.endpoints.s3_endpoint:
            config["endpoint"] = self.endpoints.s3_endpoint
        return config

    def _client_options(self, url: str) -> dict:
        options = {"timeout": timedelta(seconds=60), "connect_timeout": timedelta(seconds=10)}
        if url.startswith("http://") or (self.endpoints.s3_endpoint or "").startswith("http://"):
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
                self.endpoints.s3_endpoint or ""), retry_config=RETRY, credential_provider=self.credentials,
                asynchronous=True)
        if protocol in ("http", "https"):
            return FsspecStore(protocol, client_options=self._client_options(self.https_base)
                               | {"default_headers": self._bearer(self.https_base)},
                               retry_config=RETRY, asynchronous=True)
        raise AccessError(f"unsupported protocol {protocol!r} (use s3 or https)")

    def s3fs_options(self) -> dict:
        """``remote_options`` for plain fsspec/s3fs users (credentials valid for one hour)."""
        options = ({"client_kwargs": {"region_name": self.endpoints.region}}
                   | self.credentials.get().as_s3fs())
        if self.endpoints.s3_endpoint:
            options["endpoint_url"] = self.endpoints.s3_endpoint
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
        return f"s3://{self.endpoints.s3_bucket}/{url[len(base):]}"

"""Endpoints: every address gcov-index talks to, as one frozen value, and where the Earthdata
token may go.

``PROD`` is NASA's archive. ``Endpoints.from_env()`` applies the overrides a user (or a local
archive) sets in the environment; the value is then passed explicitly to search and to
:class:`~gcov_index.io.access.Access`, so nothing else reads these variables.

The token goes only to the configured hosts (:meth:`Endpoints.token_refusal`): the hosts of
``https_base``, ``s3_credentials_url`` and ``edl_url``, and those named in ``trusted_hosts``;
over https, or over plain http to a loopback address (the local stand-ins). A store or a URL
naming any other host is read without it, and so is the pre-signed URL a configured host
redirects a granule to (``io/access.py``: ``Redirects``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from urllib.parse import urlsplit

# field -> environment variables that set it, first found wins
ENV_VARS: dict[str, tuple[str, ...]] = {
    "cmr_host": ("GCOV_INDEX_CMR_HOST",),
    "edl_url": ("GCOV_INDEX_EDL_URL",),
    "s3_credentials_url": ("GCOV_INDEX_S3CREDENTIALS_URL",),
    "https_base": ("GCOV_INDEX_HTTPS_BASE",),
    "s3_endpoint": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "s3_bucket": ("GCOV_INDEX_S3_BUCKET",),
    "trusted_hosts": ("GCOV_INDEX_TRUSTED_HOSTS",),  # comma-separated
}
DEFAULT_PORTS = {"https": 443, "http": 80}
# a host part every URL parser reads alike: no user info ("a@b"), backslash, percent or space,
# which Python's urlsplit and the WHATWG parser of reqwest (obstore) may read differently
_PLAIN_NETLOC = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost."""
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, int | None]:
    """(host, port) of a URL, the port made explicit from the scheme when absent."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: matches nothing
        return ("", -1)
    return ((parts.hostname or "").lower(), port or DEFAULT_PORTS.get(parts.scheme.lower()))


def _host_entry(entry: str) -> tuple[str, int | None]:
    """A ``trusted_hosts`` entry: ``host``, ``host:port``, ``[::1]:port`` or a URL; no port
    means any port of that host."""
    entry = entry.strip()
    if "://" in entry:
        parts = urlsplit(entry)
        return (parts.hostname or "").lower(), parts.port
    return _origin(f"//{entry}") if entry else ("", -1)


def _hosts(value) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return tuple(h.strip() for h in items if h and h.strip())


@dataclass(frozen=True)
class Endpoints:
    """Where the archive is. Defaults are NASA's production endpoints."""

    cmr_host: str = "cmr.earthdata.nasa.gov"  # asf_search's INTERNAL.CMR_HOST
    edl_url: str = "https://urs.earthdata.nasa.gov"  # Earthdata Login (netrc -> token)
    s3_credentials_url: str = "https://nisar.asf.earthdatacloud.nasa.gov/s3credentials"
    https_base: str = "https://nisar.asf.earthdatacloud.nasa.gov/NISAR"
    s3_endpoint: str | None = None  # None: AWS itself
    s3_bucket: str = "sds-n-cumulus-prod-nisar-products"  # the public products bucket
    region: str = "us-west-2"  # where the bucket is; not read from AWS_REGION on purpose
    # more hosts the Earthdata token may go to ("host" or "host:port"; a comma-separated
    # string is split), besides those of https_base, s3_credentials_url and edl_url
    trusted_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted_hosts", _hosts(self.trusted_hosts))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Endpoints:
        """NASA's endpoints with the environment's overrides (``ENV_VARS``), then the
        ``overrides`` given here (``None`` values are ignored: an option not given)."""
        env = os.environ if environ is None else environ
        values: dict[str, str | tuple[str, ...]] = {}
        for name, names in ENV_VARS.items():
            found = next((env[v] for v in names if env.get(v)), None)
            if found:
                values[name] = found
        return cls(**values).with_(**overrides)

    def with_(self, **overrides) -> Endpoints:
        """A copy with the given fields changed (``None`` values are ignored)."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown endpoint field(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def env(self) -> dict[str, str]:
        """The environment variables that give these endpoints to another process."""
        out = {}
        for name, names in ENV_VARS.items():
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = ",".join(value) or None
            if value is not None:
                out[names[-1]] = value
        return out

    # -- where the token may go ----------------------------------------------------------
    def token_refusal(self, url: str) -> str | None:
        """Why the Earthdata token must not be sent with a request to ``url``, or None when
        it may: https (or plain http to a loopback address) to a configured host."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host, port = _origin(url)
        if scheme not in ("https", "http") or not host:
            return f"{url} is not an https URL"
        if not _PLAIN_NETLOC.fullmatch(parts.netloc):
            return f"{parts.netloc!r} is not a plain host[:port]"
        if scheme == "http" and not is_loopback(host):
            return f"{host} is reached over plain http (the token goes over https only)"
        configured = {_origin(u) for u in (self.https_base, self.s3_credentials_url,
                                           self.edl_url)}
        if (host, port) in configured:
            return None
        for h, p in map(_host_entry, self.trusted_hosts):
            if h == host and p in (None, port):
                return None
        return (f"{host}{'' if port == DEFAULT_PORTS.get(scheme) else f':{port}'} is not a "
                "trusted host (to trust it, add it to GCOV_INDEX_TRUSTED_HOSTS)")

    def is_login(self, url: str) -> bool:
        """Whether ``url`` is on the Earthdata Login host (``edl_url``'s host and port): where
        an endpoint sends a request whose token it did not accept."""
        return _origin(url) == _origin(self.edl_url)

    @property
    def is_nasa(self) -> bool:
        return self.cmr_host == PROD.cmr_host


PROD = Endpoints()

"""Endpoints: every address gcov-index talks to, as one frozen value.

``PROD`` is NASA's archive. ``Endpoints.from_env()`` applies the overrides a user (or a local
archive) sets in the environment; the value is then passed explicitly to search and to
:class:`~gcov_index.io.access.Access`, so nothing else reads these variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

# field -> environment variables that set it, first found wins
ENV_VARS: dict[str, tuple[str, ...]] = {
    "cmr_host": ("GCOV_INDEX_CMR_HOST",),
    "edl_url": ("GCOV_INDEX_EDL_URL",),
    "s3_credentials_url": ("GCOV_INDEX_S3CREDENTIALS_URL",),
    "https_base": ("GCOV_INDEX_HTTPS_BASE",),
    "s3_endpoint": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "s3_bucket": ("GCOV_INDEX_S3_BUCKET",),
}


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Endpoints:
        """NASA's endpoints with the environment's overrides (``ENV_VARS``), then the
        ``overrides`` given here (``None`` values are ignored: an option not given)."""
        env = os.environ if environ is None else environ
        values = {}
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
            if value is not None:
                out[names[-1]] = value
        return out

    @property
    def is_nasa(self) -> bool:
        return self.cmr_host == PROD.cmr_host


PROD = Endpoints()

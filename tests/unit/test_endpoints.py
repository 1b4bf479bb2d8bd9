"""Endpoints (one frozen value, overridden by the environment then by options) and Fingerprint."""

from __future__ import annotations

import dataclasses

import pytest

from gcov_index.io.endpoints import ENV_VARS, PROD, Endpoints
from gcov_index.io.fingerprint import Fingerprint

LOCAL = {
    "cmr_host": "localhost:9001",
    "edl_url": "http://localhost:9002",
    "s3_credentials_url": "http://localhost:9003/s3credentials",
    "https_base": "http://localhost:9004/NISAR",
    "s3_endpoint": "http://localhost:9005",
    "s3_bucket": "test-bucket",
    "trusted_hosts": "data.example.org, 127.0.0.2:9006",  # comma-separated in the environment
}


# -- Endpoints -------------------------------------------------------------------------------
def test_defaults_are_nasa_production():
    e = Endpoints()
    assert e == PROD and e.is_nasa
    assert e.cmr_host == "cmr.earthdata.nasa.gov"
    assert e.edl_url == "https://urs.earthdata.nasa.gov"
    assert e.s3_endpoint is None and e.region == "us-west-2"
    assert e.s3_bucket == "sds-n-cumulus-prod-nisar-products"


def test_an_empty_environment_gives_production():
    assert Endpoints.from_env(environ={}) == PROD


def test_env_vars_cover_every_field_but_the_region():
    fields = {f.name for f in dataclasses.fields(Endpoints)}
    assert set(ENV_VARS) == fields - {"region"}


@pytest.mark.parametrize("field", sorted(ENV_VARS))
def test_from_env_reads_each_variable(field):
    for var in ENV_VARS[field]:
        e = Endpoints.from_env(environ={var: LOCAL[field]})
        assert getattr(e, field) == getattr(Endpoints(**{field: LOCAL[field]}), field), var
        assert dataclasses.replace(e, **{field: getattr(PROD, field)}) == PROD
        assert e.is_nasa is (field != "cmr_host")


def test_aws_endpoint_url_s3_wins_over_aws_endpoint_url():
    env = {"AWS_ENDPOINT_URL": "http://general:1", "AWS_ENDPOINT_URL_S3": "http://s3only:2"}
    assert Endpoints.from_env(environ=env).s3_endpoint == "http://s3only:2"
    assert Endpoints.from_env(environ={"AWS_ENDPOINT_URL": "http://general:1"}).s3_endpoint \
        == "http://general:1"


def test_empty_variables_are_not_overrides():
    env = {"GCOV_INDEX_CMR_HOST": "", "AWS_ENDPOINT_URL_S3": "", "AWS_ENDPOINT_URL": "http://a:1"}
    e = Endpoints.from_env(environ=env)
    assert e.cmr_host == PROD.cmr_host and e.s3_endpoint == "http://a:1"


def test_from_env_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("GCOV_INDEX_S3_BUCKET", "from-os-environ")
    assert Endpoints.from_env().s3_bucket == "from-os-environ"
    assert Endpoints.from_env(environ={}).s3_bucket == PROD.s3_bucket


def test_keyword_overrides_win_over_the_environment():
    env = {"GCOV_INDEX_CMR_HOST": "env-host", "GCOV_INDEX_S3_BUCKET": "env-bucket"}
    e = Endpoints.from_env(environ=env, cmr_host="option-host", region="eu-west-1")
    assert (e.cmr_host, e.s3_bucket, e.region) == ("option-host", "env-bucket", "eu-west-1")


def test_none_overrides_are_ignored():
    env = {"GCOV_INDEX_CMR_HOST": "env-host"}
    e = Endpoints.from_env(environ=env, cmr_host=None, s3_endpoint=None)
    assert e.cmr_host == "env-host" and e.s3_endpoint is None
    assert PROD.with_(cmr_host=None, https_base=None) == PROD


def test_with_changes_only_the_given_fields():
    e = PROD.with_(s3_bucket="other")
    assert e.s3_bucket == "other" and dataclasses.replace(e, s3_bucket=PROD.s3_bucket) == PROD
    assert PROD.s3_bucket == "sds-n-cumulus-prod-nisar-products"


def test_unknown_fields_are_refused():
    with pytest.raises(TypeError, match=r"unknown endpoint field\(s\): cmr_hots"):
        PROD.with_(cmr_hots="x")
    with pytest.raises(TypeError, match="bucket, cmr"):
        Endpoints.from_env(environ={}, cmr="x", bucket="y")


def test_endpoints_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROD.cmr_host = "elsewhere"  # type: ignore[misc]
    assert hash(PROD) == hash(Endpoints())


def test_env_round_trips_through_from_env():
    local = Endpoints(**LOCAL)
    env = local.env()
    assert env["AWS_ENDPOINT_URL"] == LOCAL["s3_endpoint"]
    assert set(env) == {names[-1] for names in ENV_VARS.values()}
    assert Endpoints.from_env(environ=env) == local
    assert Endpoints.from_env(environ=PROD.env()) == PROD
    assert "AWS_ENDPOINT_URL" not in PROD.env()  # None: AWS itself, nothing to pass on


# -- Fingerprint -----------------------------------------------------------------------------
FP = Fingerprint(size=1234, etag='"abc-1"', mtime="2025-12-01T10:00:00+00:00")


def test_fingerprint_dict_round_trip():
    assert FP.to_dict() == {"size": 1234, "etag": '"abc-1"', "mtime": "2025-12-01T10:00:00+00:00"}
    assert Fingerprint.from_dict(FP.to_dict()) == FP
    assert Fingerprint.from_dict({"size": "1234"}) == Fingerprint(1234)
    assert Fingerprint.from_dict(Fingerprint(5).to_dict()) == Fingerprint(5, None, None)


@pytest.mark.parametrize("change", [{"size": 1235}, {"etag": '"abc-2"'}, {"etag": None},
                                    {"mtime": "2025-12-01T10:00:01+00:00"}, {"mtime": None}])
def test_fingerprint_key_changes_with_every_field(change):
    other = dataclasses.replace(FP, **change)
    assert other.key != FP.key
    assert dataclasses.replace(FP).key == FP.key


def test_fingerprint_changes_lists_only_the_differing_fields():
    assert FP.changes(FP) == []
    now = dataclasses.replace(FP, size=2000, mtime="2025-12-02T00:00:00+00:00")
    assert FP.changes(now) == ["size 1234 -> 2000",
                               "mtime 2025-12-01T10:00:00+00:00 -> 2025-12-02T00:00:00+00:00"]
    assert FP.changes(now, fields=("etag", "mtime")) == [
        "mtime 2025-12-01T10:00:00+00:00 -> 2025-12-02T00:00:00+00:00"]
    assert FP.changes(dataclasses.replace(FP, etag=None)) == ['etag "abc-1" -> None']


def test_fingerprint_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FP.size = 1  # type: ignore[misc]

"""``-vv`` against the local archive: each request, retry and credential fetch is logged, and
no secret (the Earthdata token, the temporary secret key and session token, a pre-signed
URL's signature and session token) ever reaches stderr."""

from __future__ import annotations

import re

from gcov_index.cli import main
from tests.support.faults import FaultProxy


class FirstCredentialsRefused(FaultProxy):
    """In front of the Earthdata stand-in: the first ``s3credentials`` request answered 503."""

    def decide(self, method: str, path: str, rng: str) -> str | None:
        if not path.startswith("/s3credentials"):
            return None
        with self.lock:
            self._attempts[path] += 1
            return "slowdown" if self._attempts[path] == 1 else None


def test_requests_retries_and_credentials_are_logged_without_secrets(
        archive, archive_env, stack, tmp_path, monkeypatch, capsys):
    issued: list[dict] = []
    issue = archive.s3.issue

    def recorded(lifetime):
        issued.append(issue(lifetime))
        return issued[-1]

    monkeypatch.setattr(archive.s3, "issue", recorded)
    first, second = stack["paths"][:2]
    out = tmp_path / "s.json"
    with FirstCredentialsRefused(archive.earthdata.url) as proxy:
        monkeypatch.setenv("GCOV_INDEX_S3CREDENTIALS_URL", f"{proxy.url}/s3credentials")
        rc = main(["build", archive.s3_url(first.name), archive.https_url(second.name),
                   "--out", str(out), "--no-cache", "-vv"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert proxy.counts["slowdown"] == 1 and issued
    lines = err.splitlines()
    assert all(ln.startswith("gcov-index: ") for ln in lines)

    def logged(pattern: str) -> list[str]:
        return [ln for ln in lines if re.search(pattern, ln)]

    # the credentials: the 503, its retry, the fetch and its expiry
    creds = f"{proxy.url}/s3credentials"
    assert logged(rf"debug: .*GET {re.escape(creds)}: HTTP 503 in ")
    assert logged(rf"GET {re.escape(creds)}: retry in [\d.]+ s \(HTTP 503 is transient\)")
    assert logged(rf"GET {re.escape(creds)}: HTTP 200 in ")
    assert logged(r"info: .*S3 credentials fetched from .*: valid until \d{4}-\d\d-\d\dT")
    # each request: fingerprints, reads of both granules, the https redirect resolved once
    assert logged(rf"HEAD {re.escape(archive.s3_url(first.name))}: \d+ bytes")
    assert logged(rf"GET \d+ ranges \(\d+ bytes\) of {re.escape(archive.s3_url(first.name))}")
    https = re.escape(archive.https_url(second.name))
    assert len(logged(rf"GET {https} with the token, a redirect not followed")) == 1
    assert logged(rf"{https}: redirected \(HTTP 303\) to {re.escape(archive.signed.url)}/.*"
                  r"X-Amz-Signature=\*\*\*")
    assert logged(rf"GET \d+ ranges \(\d+ bytes\) of {https} \(at its pre-signed URL\)")
    assert logged(r"debug: .*scan .*: done in ")
    assert logged(rf"info: .*wrote {re.escape(str(out))}: 2 granules, \d+ chunk references")
    # and no secret
    secrets = [archive.token, archive.signed._session_token, archive.signed.key_id]
    secrets += [c[k] for c in issued for k in ("secretAccessKey", "sessionToken")]
    assert not [s for s in secrets if s in err]
    assert not re.search(r"X-Amz-(?:Signature|Credential|Security-Token)=(?!\*\*\*)", err)

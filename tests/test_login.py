"""Earthdata Login as NISAR users have it: an earthaccess login, earthaccess's environment
variables, a ``~/.netrc`` entry, and the ``.netrc`` trap of plain ``requests``.

earthaccess runs for real against the local Earthdata Login (over https: earthaccess asks
``https://{edl_hostname}/...`` only), so these tests pin what its login leaves behind.
"""

from __future__ import annotations

import pytest
import requests

from gcov_index import build
from gcov_index.errors import AuthError
from gcov_index.io.access import Access
from gcov_index.io.auth import TOKEN_SOURCES, find_token_and_source


@pytest.fixture
def edl(archive, monkeypatch):
    """Earthdata Login over https (the archive's, behind a throw-away CA) and an earthaccess
    that has not logged in yet (restored afterwards: a login is process-wide)."""
    import earthaccess
    from earthaccess.auth import Auth

    monkeypatch.setattr(earthaccess, "_auth", Auth())
    monkeypatch.setattr(earthaccess, "_store", None)
    with archive.earthdata.tls() as front:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(front.ca_file))
        yield front


def _system(host: str):
    from earthaccess.system import System

    return System("https://cmr.invalid", "https://status.invalid/", "https://status.invalid/api",
                  host)


def _endpoints(archive, edl):
    return archive.endpoints.with_(edl_url=edl.url)


def test_an_earthaccess_netrc_login_in_this_process_is_used(archive, edl, stack, tmp_path,
                                                            monkeypatch):
    import earthaccess

    # earthaccess's "netrc" strategy reads the machine named as its host (with the port here);
    # the exchange itself sends the login through requests' own ~/.netrc look-up, by host name
    # (earthaccess's retry after a 401 compares host names too, which a port defeats)
    netrc = tmp_path / "netrc"
    (user, password), = archive.earthdata.users.items()
    netrc.write_text(f"machine {edl.host} login {user} password {password}\n"
                     f"machine 127.0.0.1 login {user} password {password}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    auth = earthaccess.login(strategy="netrc", system=_system(edl.host))
    assert auth.authenticated
    exchanges = len(archive.earthdata.stats.seen("POST", prefix="/api/users/"))
    assert exchanges >= 1  # earthaccess's own
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))  # the login alone gives the token

    access = Access.from_env(endpoints=_endpoints(archive, edl))
    assert access.token == archive.token
    assert access.token_source is None  # held by this process: workers are not told of it
    assert len(archive.earthdata.stats.seen("POST", prefix="/api/users/")) == exchanges
    url = archive.s3_url(stack["paths"][0].name)
    built = build([url], tmp_path / "one.json", access=access, cache=False)
    assert built.store.exists()


def test_an_earthaccess_environment_login_is_used_after_the_variable_is_gone(
        archive, edl, monkeypatch):
    import earthaccess

    monkeypatch.setenv("EARTHDATA_TOKEN", archive.token)
    earthaccess.login(strategy="environment", system=_system(edl.host))
    monkeypatch.delenv("EARTHDATA_TOKEN")
    assert find_token_and_source(edl_url=edl.url) == (archive.token, "earthaccess")


def test_an_earthaccess_login_to_another_host_is_not_used(archive, edl, monkeypatch):
    import earthaccess

    monkeypatch.setenv("EARTHDATA_TOKEN", archive.token)
    earthaccess.login(strategy="environment", system=_system(edl.host))
    monkeypatch.delenv("EARTHDATA_TOKEN")
    # a token of one Earthdata Login is not sent to the credentials endpoint of another
    assert find_token_and_source(edl_url="https://urs.earthdata.nasa.gov") == (None, None)


def test_the_earthdata_username_and_password_variables_are_exchanged_for_a_token(
        archive, archive_env, monkeypatch):
    monkeypatch.delenv("EARTHDATA_TOKEN")
    (user, password), = archive.earthdata.users.items()
    monkeypatch.setenv("EARTHDATA_USERNAME", user)
    monkeypatch.setenv("EARTHDATA_PASSWORD", password)
    access = Access.from_env()
    assert access.token == archive.token and access.token_source == "env-login"
    monkeypatch.setenv("EARTHDATA_PASSWORD", "wrong")
    with pytest.raises(AuthError, match="rejected EARTHDATA_USERNAME/EARTHDATA_PASSWORD"):
        Access.from_env()


def test_the_order_of_the_token_sources(archive, archive_env, tmp_path, monkeypatch):
    """An explicit token, then a token file, then EARTHDATA_TOKEN, ..., then ~/.netrc."""
    assert TOKEN_SOURCES[:3] == ("argument", "file", "env:EARTHDATA_TOKEN")
    assert TOKEN_SOURCES[-1] == "netrc"
    f = tmp_path / "token"
    f.write_text("from-file\n")
    edl_url = archive.endpoints.edl_url
    assert find_token_and_source("given", f, edl_url) == ("given", "argument")
    assert find_token_and_source(None, f, edl_url) == ("from-file", f"file:{f}")
    assert find_token_and_source(None, None, edl_url) == (archive.token, "env:EARTHDATA_TOKEN")


def test_the_netrc_trap_of_plain_requests(archive, tmp_path, monkeypatch):
    """With a ~/.netrc entry for the credentials host, requests replaces an explicit Bearer
    header by that entry's Basic auth (401); a session with ``trust_env = False`` (the
    README's plain-xarray snippet) does not look at ~/.netrc."""
    url = archive.endpoints.s3_credentials_url
    host = requests.utils.urlparse(url).hostname
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {host} login someone password something\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    bearer = {"Authorization": f"Bearer {archive.token}"}

    assert requests.get(url, headers=bearer, timeout=10).status_code == 401  # the trap

    session = requests.Session()
    session.trust_env = False  # no ~/.netrc (and no proxy or CA variables)
    session.headers.update(bearer)
    creds = session.get(url, timeout=10)
    assert creds.status_code == 200 and creds.json()["accessKeyId"]

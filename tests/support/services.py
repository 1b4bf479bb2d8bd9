"""Local stand-ins for NASA's archive, on loopback only; used by tests, the demo and benchmarks.

- ``S3Gateway``: a real S3 API (moto's server, in its own process) behind a gateway that
  checks each request's access key and session token against the credentials it issued, and
  refuses unknown ones (403 ``InvalidAccessKeyId``) and expired ones (400 ``ExpiredToken``) as
  S3 does. It can add a per-request latency, and counts requests, bytes, refusals and requests
  in flight. For benchmarks of full-size granules the same gateway can serve GetObject /
  HeadObject from the archive's files instead of moto.
- ``EarthdataService``: ``GET /s3credentials`` with a bearer token answers the real JSON shape
  (401 otherwise); ``POST /api/users/find_or_create_token`` exchanges a login for a token;
  ``GET``/``HEAD /NISAR/<collection>/<stem>/<stem>.h5`` with the bearer token answers, as NASA's
  endpoint does, a redirect (303 by default; ``redirect=307`` too) to a pre-signed URL on
  another host (``SignedService``), or, with ``redirect=None``, serves the bytes itself with
  Range (401 without a valid token, either way).
- ``SignedService``: that other host (127.0.0.4), S3 as a pre-signed URL reaches it: it checks
  the URL's signature (an HMAC of method, path, date and lifetime under a secret of its own)
  and its expiry, answers 403 ``SignatureDoesNotMatch`` / ``AccessDenied`` (Request has expired)
  as S3 does, and 400 ``InvalidArgument`` to a request that also carries an ``Authorization``
  header (S3 takes one authentication only); it serves the bytes with Range.
- ``LocalArchive``: all three, with granules uploaded where NISAR keeps them, and the
  environment a client needs (``AWS_ENDPOINT_URL``, ``GCOV_INDEX_S3CREDENTIALS_URL``, ...).

Every server counts its requests in a ``Stats``; the HTTPS endpoint and the signed host also
record each request (``Stats.hits``: method, path, Range, status, headers) so that a test can
count redirects and range GETs per host and check which requests carried ``Authorization``
(``LocalArchive.hosts``). S3 signatures are not verified (moto does not either); keys, tokens
and expiry are.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

from gcov_index.io.access import Access
from gcov_index.io.endpoints import PROD, Endpoints
from gcov_index.product import maturity_of

COLLECTION = "NISAR_L2_GCOV_BETA_V1"


def collection_of(stem: str) -> str:
    """The archive collection of a granule: its CRID's maturity (BETA when the name has none)."""
    crid = re.search(r"_([A-Z]\d{5})_[A-Z]_[A-Z]_[A-Z]_\d{3}$", stem)
    return f"NISAR_L2_GCOV_{maturity_of(crid.group(1))}_V1" if crid else COLLECTION
BUCKET = PROD.s3_bucket  # the archive stands where NASA's does
ADMIN_KEY = "GCOVINDEXADMIN000000"  # test-only key for uploads, never issued to clients


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto's server exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"moto's server did not listen on port {port} within {timeout:g} s")


def _s3_error(code: str, message: str, status: int) -> tuple[int, bytes]:
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>{secrets.token_hex(8)}</RequestId></Error>")
    return status, body.encode()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK (40 ms) on a kept-alive connection
    disable_nagle_algorithm = True

    def log_message(self, *args):  # no request log: it would carry paths, never secrets
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # where this request is recorded (Stats.hits), set per request by the handlers that record
    _stats: Stats | None = None

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None,
               content_type: str | None = "application/xml", length: int | None = None) -> None:
        """One response; ``length`` is the Content-Length a HEAD answers (no body sent)."""
        if self._stats is not None:
            self._stats.record(Hit(self.command, self.path, status, self.headers.get("Range"),
                                   {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _serve_file(handler: _Quiet, path: Path | None, stats: Stats,
                missing: tuple[int, bytes, str]) -> None:
    """GET or HEAD of a file, with Range, ETag and Last-Modified, counted in ``stats``."""
    if path is None or not path.is_file():
        stats.add(handler.command, 0)
        status, body, content_type = missing
        return handler._reply(status, body, content_type=content_type)
    st = path.stat()
    size = st.st_size
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{size:x}-{st.st_mtime_ns:x}"',
               "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True)}
    if handler.command == "HEAD":
        stats.add("HEAD", 0)
        return handler._reply(200, b"", headers, content_type="application/octet-stream",
                              length=size)
    rng = re.match(r"bytes=(\d+)-(\d*)$", handler.headers.get("Range", ""))
    start, end = 0, size - 1
    if rng:
        start = int(rng.group(1))
        end = min(int(rng.group(2)) if rng.group(2) else size - 1, size - 1)
        if start >= size:
            stats.add("GET", 0)
            return handler._reply(416, b"", {"Content-Range": f"bytes */{size}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start + 1)
    stats.add("GET", len(data))
    handler._reply(206 if rng else 200, data, headers, content_type="application/octet-stream")


@dataclass(frozen=True)
class Hit:
    """One request as a server saw it, and the status it answered."""

    method: str
    path: str  # as requested, query included
    status: int
    range: str | None
    headers: dict[str, str] = field(repr=False)  # names in lower case

    @property
    def authorization(self) -> bool:
        """Whether the request carried an ``Authorization`` header."""
        return "authorization" in self.headers

    @property
    def key(self) -> str:
        """The path without its query."""
        return self.path.split("?", 1)[0]


@dataclass
class Stats:
    """Requests and bytes served, by method; refusals by error code; the most requests seen
    in flight at once (concurrency); for the servers that record them, every request
    (``hits``). Reset between measurements."""

    requests: Counter = field(default_factory=Counter)
    bytes: int = 0
    refused: Counter = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)

    def seen(self, method: str | None = None, *, prefix: str = "",
             status: int | None = None) -> list[Hit]:
        """The recorded requests, of ``method`` (any), under path ``prefix``, answered
        ``status`` (any)."""
        with self.lock:
            hits = list(self.hits)
        return [h for h in hits if (method is None or h.method == method)
                and h.key.startswith(prefix) and (status is None or h.status == status)]

    @property
    def redirects(self) -> int:
        """Requests answered with a redirect (3xx)."""
        return sum(1 for h in self.seen() if 300 <= h.status < 400)

    @property
    def range_gets(self) -> int:
        """GETs of a byte range answered with the bytes (206)."""
        return sum(1 for h in self.seen("GET", status=206) if h.range)

    def with_authorization(self) -> list[Hit]:
        """The recorded requests that carried an ``Authorization`` header."""
        return [h for h in self.seen() if h.authorization]

    def add(self, method: str, n: int) -> None:
        with self.lock:
            self.requests[method] += 1
            self.bytes += n

    def refuse(self, code: str) -> None:
        with self.lock:
            self.refused[code] += 1

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.refused.clear()
            self.hits.clear()
            self.bytes = 0
            self.max_in_flight = self.in_flight

    @property
    def total(self) -> int:
        return sum(self.requests.values())


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 would make concurrent clients wait to connect

    def handle_error(self, request, client_address) -> None:
        """A client that hung up (a timeout under test) is not a server error."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Server:
    def __init__(self, handler, owner, ssl_context=None, host: str = "127.0.0.1"):
        self.httpd = _HTTPServer((host, 0), handler)
        self.httpd.owner = owner
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"{'https' if ssl_context else 'http'}://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------------------
# S3


class _GatewayHandler(_Quiet):
    def _forward(self) -> None:
        gw: S3Gateway = self.server.owner
        gw.stats.enter()
        try:
            self._forward_one(gw)
        finally:
            gw.stats.leave()

    def _forward_one(self, gw: S3Gateway) -> None:
        body = self._body()
        refusal = gw.check(self.headers, self.path)
        if gw.latency:
            time.sleep(gw.latency)
        if refusal:
            status, payload = refusal
            gw.stats.add(self.command, 0)
            gw.stats.refuse(re.search(rb"<Code>(\w+)</Code>", payload).group(1).decode())
            return self._reply(status, payload)
        if gw.files is not None:
            return self._from_files(gw)
        conn = http.client.HTTPConnection("127.0.0.1", gw.moto_port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        gw.stats.add(self.command, len(data))
        passed = {k: v for k, v in resp.getheaders() if k.lower() not in (
            "transfer-encoding", "connection", "content-length", "server", "date")}
        length = resp.getheader("Content-Length") if self.command == "HEAD" else None
        self._reply(resp.status, data, passed, content_type=None,
                    length=int(length) if length else None)

    def _from_files(self, gw: S3Gateway) -> None:
        """GetObject / HeadObject (path-style ``/bucket/key``) from files on disk."""
        bucket, _, key = urlparse(self.path).path.lstrip("/").partition("/")
        root = gw.files.get(bucket)
        path = (root / key).resolve() if root is not None and key else None
        if path is not None and root not in path.parents:
            path = None
        if self.command not in ("GET", "HEAD"):
            gw.stats.add(self.command, 0)
            return self._reply(*_s3_error("NotImplemented", "read-only file-backed S3", 501))
        _serve_file(self, path, gw.stats, (*_s3_error(
            "NoSuchKey", "The specified key does not exist.", 404), "application/xml"))

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


class S3Gateway:
    """An S3 API behind a gateway that knows which credentials it issued.

    Behind it: moto's S3 server (``files=None``, the default: a real S3 API, uploads through
    ``admin_client``), or GetObject / HeadObject straight from files, ``files`` mapping each
    bucket to a folder holding its keys (for benchmarks: moto answers a range GET of a 38 MB
    object in ~25 ms, one at a time, which would hide what the client does).
    """

    _ACCESS_KEY = re.compile(r"Credential=([A-Z0-9]+)/")

    def __init__(self, latency: float = 0.0, files: dict[str, Path] | None = None):
        self.files = {b: Path(d).resolve() for b, d in files.items()} if files else None
        self.moto = None
        if self.files is None:
            # moto's server in its own process: moto keeps one S3 namespace per process, so
            # two archives in one process (tests, benchmarks) would overwrite each other
            self.moto_port = free_port()
            self.moto = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                 str(self.moto_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_for_port(self.moto_port, self.moto)
        self.latency = latency
        self.stats = Stats()
        self._issued: dict[str, tuple[str, datetime]] = {}  # key -> (session token, expiry)
        self._lock = threading.Lock()
        self._server = _Server(_GatewayHandler, self)
        self.url = self._server.url

    def issue(self, lifetime: timedelta) -> dict:
        key = "ASIA" + secrets.token_hex(8).upper()
        token = secrets.token_urlsafe(48)
        expiry = datetime.now(UTC) + lifetime
        with self._lock:
            self._issued[key] = (token, expiry)
        return {"accessKeyId": key, "secretAccessKey": secrets.token_urlsafe(30),
                "sessionToken": token, "expiration": expiry.isoformat(sep=" ", timespec="seconds")}

    def check(self, headers, path: str) -> tuple[int, bytes] | None:
        auth = headers.get("Authorization", "")
        m = self._ACCESS_KEY.search(auth)
        query = parse_qs(urlparse(path).query)
        key = m.group(1) if m else (query.get("X-Amz-Credential", [""])[0].split("/")[0])
        token = headers.get("x-amz-security-token") or query.get("X-Amz-Security-Token", [""])[0]
        if key == ADMIN_KEY:
            return None
        with self._lock:
            issued = self._issued.get(key)
        if not key or issued is None:
            return _s3_error("InvalidAccessKeyId", "The AWS Access Key Id you provided does not "
                             "exist in our records.", 403)
        if token != issued[0]:
            return _s3_error("InvalidToken", "The provided token is malformed or otherwise "
                             "invalid.", 400)
        if datetime.now(UTC) >= issued[1]:
            return _s3_error("ExpiredToken", "The provided token has expired.", 400)
        return None

    def admin_client(self):
        import boto3

        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.moto_port}",
                            aws_access_key_id=ADMIN_KEY, aws_secret_access_key="admin",
                            region_name="us-west-2")

    def stop(self) -> None:
        self._server.stop()
        if self.moto is not None:
            self.moto.terminate()
            self.moto.wait(timeout=10)


# ---------------------------------------------------------------------------------------
# Earthdata: credentials, token exchange, HTTPS file server


class _EarthdataHandler(_Quiet):
    def _bearer_ok(self) -> bool:
        svc: EarthdataService = self.server.owner
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[7:].strip() in svc.tokens

    def _login_ok(self) -> bool:
        """Basic auth of a known user (a login, as from ~/.netrc)."""
        svc: EarthdataService = self.server.owner
        auth = self.headers.get("Authorization", "")
        try:
            user, _, password = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            return False
        return bool(password) and svc.users.get(user) == password

    def do_GET(self) -> None:
        svc: EarthdataService = self.server.owner
        self._stats = svc.stats
        path = urlparse(self.path).path
        if svc.latency:
            time.sleep(svc.latency)
        if path == "/s3credentials":
            svc.stats.add("CREDENTIALS", 0)
            if not self._bearer_ok():
                return self._reply(401, b'{"error": "Unauthorized"}', content_type="application/json")
            body = json.dumps(svc.gateway.issue(svc.lifetime)).encode()
            return self._reply(200, body, content_type="application/json")
        if path == "/profile":  # Earthdata Login's profile page: earthaccess.login() asks it
            svc.stats.add("PROFILE", 0)
            ok = self._bearer_ok() or self._login_ok()
            return self._reply(200 if ok else 401, b"profile" if ok else b"Unauthorized",
                               content_type="text/plain")
        if path.startswith("/NISAR/"):
            svc.stats.enter()
            try:
                return self._file(path[len("/NISAR/"):])
            finally:
                svc.stats.leave()
        return self._reply(404, b"not found", content_type="text/plain")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        svc: EarthdataService = self.server.owner
        self._stats = svc.stats
        self._body()
        if urlparse(self.path).path != "/api/users/find_or_create_token":
            return self._reply(404, b"not found", content_type="text/plain")
        if not self._login_ok():
            return self._reply(401, b'{"error": "invalid_credentials"}', content_type="application/json")
        body = json.dumps({"access_token": svc.token, "token_type": "Bearer",
                           "expiration_date": "12/31/2099"}).encode()
        return self._reply(200, body, content_type="application/json")

    def _file(self, rel: str) -> None:
        svc: EarthdataService = self.server.owner
        if not self._bearer_ok():
            svc.stats.add(self.command, 0)
            return self._reply(401, b"Unauthorized", content_type="text/plain")
        if svc.redirect:  # as NASA's endpoint: to a URL signed for this method, elsewhere
            svc.stats.add(self.command, 0)
            location = svc.signed.sign(self.command, f"/{BUCKET}/{rel}")
            return self._reply(svc.redirect, b"", {"Location": location}, content_type=None)
        path = (svc.root / rel).resolve()
        if svc.root not in path.parents:
            path = None
        _serve_file(self, path, svc.stats, (404, b"not found", "text/plain"))


class EarthdataService:
    """Credentials, the token exchange and the HTTPS endpoint of the granules. ``redirect``
    (303, 307, ...; settable at any time) answers a granule's GET or HEAD with that redirect
    to a URL ``signed`` signs; ``None`` serves the bytes here."""

    def __init__(self, gateway: S3Gateway, root: Path, lifetime: timedelta = timedelta(hours=1),
                 latency: float = 0.0, signed: SignedService | None = None,
                 redirect: int | None = 303):
        self.gateway = gateway
        self.root = Path(root).resolve()
        self.lifetime = lifetime
        self.latency = latency
        self.signed = signed
        self.redirect = redirect if signed is not None else None
        self.token = "edl-" + secrets.token_urlsafe(32)
        self.tokens = {self.token}
        self.users = {"nisar-user": secrets.token_urlsafe(12)}
        self.stats = Stats()
        self._server = _Server(_EarthdataHandler, self)
        self.url = self._server.url

    def tls(self) -> TLSFront:
        """This service over https too (as Earthdata Login is: earthaccess asks
        ``https://{edl_hostname}/...`` and nothing else). Stop it after use."""
        return TLSFront(_EarthdataHandler, self)

    def stop(self) -> None:
        self._server.stop()


class TLSFront:
    """A service's handler on another loopback port over https, with a throw-away CA
    (``trustme``): ``url``, ``host`` (``127.0.0.1:PORT``) and ``ca_file`` for
    ``REQUESTS_CA_BUNDLE``."""

    def __init__(self, handler, owner):
        import ssl
        import tempfile

        import trustme

        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._dir = tempfile.TemporaryDirectory(prefix="gcov-index-tls-")
        self.ca_file = Path(self._dir.name) / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._server = _Server(handler, owner, ssl_context=context)
        self.url = self._server.url
        self.host = f"127.0.0.1:{self._server.port}"

    def stop(self) -> None:
        self._server.stop()
        self._dir.cleanup()

    def __enter__(self) -> TLSFront:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------
# the host of the pre-signed URLs


def _amz_date(t: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


class _SignedHandler(_Quiet):
    def _any(self) -> None:
        svc: SignedService = self.server.owner
        self._stats = svc.stats
        self._body()
        svc.stats.enter()
        try:
            if svc.latency:
                time.sleep(svc.latency)
            parsed = urlparse(self.path)
            refusal = svc.check(self.command, parsed.path, parse_qs(parsed.query), self.headers)
            if refusal is not None:
                code, status, payload = refusal
                svc.stats.add(self.command, 0)
                svc.stats.refuse(code)
                return self._reply(status, payload)
            bucket, _, key = parsed.path.lstrip("/").partition("/")
            path = (svc.root / key).resolve() if bucket == BUCKET and key else None
            if path is not None and svc.root not in path.parents:
                path = None
            _serve_file(self, path, svc.stats, (*_s3_error(
                "NoSuchKey", "The specified key does not exist.", 404), "application/xml"))
        finally:
            svc.stats.leave()

    do_GET = do_HEAD = _any


class SignedService:
    """The host a pre-signed URL leads to (S3 behind NASA's HTTPS endpoint), on another
    loopback address than the archive (``host``): path-style ``/<bucket>/<key>`` URLs with
    SigV4-like query parameters. A URL is signed for one method (as S3's: a URL signed for
    GET refuses a HEAD) and lives ``lifetime`` (whole seconds, as ``X-Amz-Expires``).
    ``revoke()`` changes the secret: every URL signed before is refused (as when the signing
    credentials are rotated); ``tamper`` signs every new URL wrongly. ``base`` is where the
    URLs it signs point (its own ``url``; a proxy in front of it, e.g. ``FaultProxy``)."""

    def __init__(self, root: Path, host: str = "127.0.0.4",
                 lifetime: timedelta = timedelta(hours=1), latency: float = 0.0):
        self.root = Path(root).resolve()
        self.lifetime = lifetime
        self.latency = latency
        self.tamper = False
        self.stats = Stats()
        self.key_id = "ASIA" + secrets.token_hex(8).upper()
        self._secret = secrets.token_bytes(32)
        self._session_token = secrets.token_urlsafe(48)
        self._server = _Server(_SignedHandler, self, host=host)
        self.url = self._server.url
        self.base = self.url
        self.signed = 0  # URLs signed

    def _signature(self, method: str, path: str, date: str, expires: str, credential: str,
                   secret: bytes | None = None) -> str:
        text = "\n".join([method, path, date, expires, credential])
        return hmac.new(secret or self._secret, text.encode(), hashlib.sha256).hexdigest()

    def sign(self, method: str, path: str) -> str:
        """A URL of ``path`` (``/<bucket>/<key>``) pre-signed for ``method``, valid from now for
        ``lifetime``."""
        date = _amz_date(time.time())
        expires = str(max(0, int(self.lifetime.total_seconds())))
        credential = f"{self.key_id}/{date[:8]}/us-west-2/s3/aws4_request"
        signature = self._signature(method, path, date, expires, credential)
        if self.tamper:
            signature = signature[::-1]
        self.signed += 1
        query = urlencode({"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": credential,
                           "X-Amz-Date": date, "X-Amz-Expires": expires,
                           "X-Amz-SignedHeaders": "host",
                           "X-Amz-Security-Token": self._session_token,
                           "X-Amz-Signature": signature})
        return f"{self.base}{path}?{query}"

    def check(self, method: str, path: str, query: dict, headers) -> tuple[str, int, bytes] | None:
        """(code, status, body) of S3's refusal of this request, or None when it may be read."""
        if headers.get("Authorization"):
            return "InvalidArgument", *_s3_error(
                "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm "
                "query parameter, Signature query string parameter or the Authorization header "
                "should be specified", 400)
        q = {k: v[0] for k, v in query.items()}
        needed = ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-Signature")
        if any(k not in q for k in needed):
            return "AccessDenied", *_s3_error("AccessDenied", "Access Denied", 403)
        expected = self._signature(method, path, q["X-Amz-Date"], q["X-Amz-Expires"],
                                   q["X-Amz-Credential"])
        if not hmac.compare_digest(expected, q["X-Amz-Signature"]):
            return "SignatureDoesNotMatch", *_s3_error(
                "SignatureDoesNotMatch", "The request signature we calculated does not match "
                "the signature you provided.", 403)
        try:
            signed_at = datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            expires = int(q["X-Amz-Expires"])
        except ValueError:
            return "AccessDenied", *_s3_error("AccessDenied", "Access Denied", 403)
        if datetime.now(UTC) >= signed_at + timedelta(seconds=expires):
            return "AccessDenied", *_s3_error("AccessDenied", "Request has expired", 403)
        return None

    def revoke(self) -> None:
        """A new secret: every URL signed so far is refused from now on."""
        self._secret = secrets.token_bytes(32)

    def stop(self) -> None:
        self._server.stop()


# ---------------------------------------------------------------------------------------


class LocalArchive:
    """The archive on loopback: S3 + credentials + HTTPS (redirecting to pre-signed URLs on
    another host), holding the granules given.

    Use as a context manager; ``env`` is what a client sets to reach it.
    """

    def __init__(self, root: Path, *, lifetime: timedelta = timedelta(hours=1),
                 latency: float = 0.0, s3_backend: str = "moto", redirect: int | None = 303,
                 signed_lifetime: timedelta = timedelta(hours=1),
                 signed_host: str = "127.0.0.4"):
        """``s3_backend``: "moto" (a real S3 API; tests, demo) or "files" (the same gateway
        reading the archive's files; benchmarks of full-size granules). ``redirect``: the
        status the HTTPS endpoint answers a granule with (303, 307), to a URL pre-signed on
        ``signed_host`` for ``signed_lifetime``; None: it serves the bytes itself."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.moto = s3_backend == "moto"
        self.s3 = S3Gateway(latency=latency, files=None if self.moto else {BUCKET: self.root})
        self.signed = SignedService(self.root, host=signed_host, lifetime=signed_lifetime,
                                    latency=latency)
        self.earthdata = EarthdataService(self.s3, self.root, lifetime=lifetime, latency=latency,
                                          signed=self.signed, redirect=redirect)
        if self.moto:
            self.s3.admin_client().create_bucket(
                Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})

    @property
    def token(self) -> str:
        return self.earthdata.token

    @property
    def hosts(self) -> dict[str, Stats]:
        """Each server's counts by its ``host:port``: S3, the HTTPS endpoint, the signed host."""
        return {urlparse(s.url).netloc: s.stats for s in (self.s3, self.earthdata, self.signed)}

    @property
    def endpoints(self) -> Endpoints:
        """Where this archive is, as gcov-index takes it (NASA's CMR host: set ``cmr_host``
        with ``.with_(cmr_host=...)`` when a local CMR serves the search)."""
        return Endpoints(s3_endpoint=self.s3.url,
                         s3_credentials_url=f"{self.earthdata.url}/s3credentials",
                         https_base=f"{self.earthdata.url}/NISAR", edl_url=self.earthdata.url,
                         s3_bucket=BUCKET)

    def access(self, endpoints: Endpoints | None = None) -> Access:
        """An Access to this archive with its valid token."""
        return Access(endpoints=endpoints or self.endpoints, token=self.token)

    @property
    def env(self) -> dict[str, str]:
        """What a process (the CLI) sets to reach this archive: the endpoints and the token."""
        env = self.endpoints.env()
        env.pop("GCOV_INDEX_CMR_HOST", None)  # NASA's: left to the CMR stand-in, if any
        return env | {"EARTHDATA_TOKEN": self.token}

    def key(self, name: str) -> str:
        """Where NISAR keeps a file: ``<collection>/<granule stem>/<name>`` (a QA_STATS
        companion sits beside its granule), the collection of its release's maturity (X CRIDs
        in NISAR_L2_GCOV_BETA_V1, P CRIDs in ..._PROVISIONAL_V1), as in the archive."""
        stem = name.removesuffix(".h5").removesuffix("_QA_STATS")
        return f"{collection_of(stem)}/{stem}/{name}"

    def add(self, path: Path, name: str | None = None) -> tuple[str, str]:
        """Upload a file to S3 and place it for HTTPS; returns its (s3, https) URLs."""
        name = name or path.name
        key = self.key(name)
        if self.moto:
            self.s3.admin_client().upload_file(str(path), BUCKET, key)
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.resolve() != Path(path).resolve():
            if target.exists():
                target.unlink()
            os.link(path, target) if _same_device(path, target.parent) else target.write_bytes(
                Path(path).read_bytes())
        return self.s3_url(name), self.https_url(name)

    def s3_url(self, name: str) -> str:
        return f"s3://{BUCKET}/{self.key(name)}"

    def https_url(self, name: str) -> str:
        return f"{self.earthdata.url}/NISAR/{self.key(name)}"

    def __enter__(self) -> LocalArchive:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.earthdata.stop()
        self.signed.stop()
        self.s3.stop()


def _same_device(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev

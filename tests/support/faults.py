"""Two small loopback servers for the trust tests: a sniffer and a fault-injecting proxy.

- ``Sniffer``: "another host". It answers every request (404, or a file's bytes when given
  one to serve, or a redirect) and records each request's method, path and headers, so a test
  can count the requests that carried the Earthdata token or S3 keys.
- ``Redirector``: a host that answers every request with a redirect to another URL (as the
  real HTTPS endpoint answers with a 303/307 to a pre-signed URL on another host).
- ``FaultProxy``: sits in front of one upstream (the local S3 gateway, or the HTTPS stand-in)
  and answers a chosen fraction of requests with a fault: 503 SlowDown, a reset before any
  byte, a reset or a clean close in the middle of the body (a truncated body), or a stall.
  Which request gets which fault is decided by a seeded RNG keyed on the request itself (method,
  path, range, and how many times it was seen), so a run is the same whatever the order in
  which concurrent requests arrive.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlsplit

from tests.support.services import _HTTPServer, _Quiet, _s3_error, _serve_file

FAULTS = ("slowdown", "reset", "reset-mid-body", "truncated", "stall")


def _serve(handler_cls, owner, host: str = "127.0.0.1"):
    httpd = _HTTPServer((host, 0), handler_cls)
    httpd.owner = owner
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a peer that died does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


# ---------------------------------------------------------------------------------------
# the sniffer


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case


def _headers(handler) -> dict[str, str]:
    return {k.lower(): v for k, v in handler.headers.items()}


class _SniffHandler(_Quiet):
    def _any(self) -> None:
        sniffer: Sniffer = self.server.owner
        self._body()
        with sniffer.lock:
            sniffer.seen.append(Seen(self.command, self.path, _headers(self)))
        if sniffer.files is not None:
            name = urlparse(self.path).path.rsplit("/", 1)[-1]
            path = sniffer.files.get(name)
            if path is not None and (not sniffer.require_token or self.headers.get(
                    "Authorization")):
                return _serve_file(self, path, sniffer.stats, (404, b"", "text/plain"))
            if path is not None:
                return self._reply(401, b"Unauthorized", content_type="text/plain")
        self._reply(404, b"not found", content_type="text/plain")

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _any


class Sniffer:
    """A loopback HTTP server at another address than the archive (``host``, 127.0.0.2 by
    default), recording every request. ``files`` (name -> path) are served to anyone (or only
    to requests with an Authorization header, ``require_token``); everything else is 404."""

    def __init__(self, host: str = "127.0.0.2", files: dict[str, Path] | None = None,
                 require_token: bool = False):
        from tests.support.services import Stats

        self.lock = threading.Lock()
        self.seen: list[Seen] = []
        self.files = files
        self.require_token = require_token
        self.stats = Stats()
        self._httpd = _serve(_SniffHandler, self, host)
        self.host = host
        self.url = f"http://{host}:{self._httpd.server_address[1]}"

    def carrying(self, *secrets: str) -> list[Seen]:
        """The requests whose headers or path hold any of ``secrets``."""
        secrets = tuple(s for s in secrets if s)
        return [s for s in self.seen if any(x in s.path or any(x in v for v in s.headers.values())
                                            for x in secrets)]

    def with_credentials(self) -> list[Seen]:
        """Requests that carried an Authorization header or an S3 session token at all."""
        return [s for s in self.seen if any(k.lower() in ("authorization", "x-amz-security-token")
                                            for k in s.headers)]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Sniffer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class _RedirectHandler(_Quiet):
    def _any(self) -> None:
        r: Redirector = self.server.owner
        self._body()
        with r.lock:
            r.seen.append(Seen(self.command, self.path, _headers(self)))
        self._reply(r.status, b"", {"Location": r.target + self.path}, content_type=None)

    do_GET = do_HEAD = _any


class Redirector:
    """Answers every request with ``status`` (303, 307, ...) to ``target`` + the same path."""

    def __init__(self, target: str, status: int = 307, host: str = "127.0.0.1"):
        self.target = target.rstrip("/")
        self.status = status
        self.lock = threading.Lock()
        self.seen: list[Seen] = []
        self._httpd = _serve(_RedirectHandler, self, host)
        self.url = f"http://{host}:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Redirector:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------
# the fault-injecting proxy


class _ProxyHandler(_Quiet):
    def _forward(self) -> None:
        proxy: FaultProxy = self.server.owner
        body = self._body()
        # by path, not its query: a pre-signed URL's query changes with the time it was signed,
        # and the same request must meet the same fault in every run
        fault = proxy.decide(self.command, urlsplit(self.path).path,
                             self.headers.get("Range", ""))
        if fault == "reset":  # nothing answered: the connection dies
            proxy.count(fault)
            _reset(self.connection)
            self.close_connection = True
            return
        if fault == "slowdown":
            proxy.count(fault)
            status, payload = _s3_error("SlowDown", "Please reduce your request rate.", 503)
            return self._reply(status, payload)
        conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port,
                                          timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        passed = {k: v for k, v in resp.getheaders() if k.lower() not in (
            "transfer-encoding", "connection", "content-length", "server", "date")}
        length = resp.getheader("Content-Length") if self.command == "HEAD" else None
        if fault is None or self.command == "HEAD" or len(data) < 2:
            if fault == "stall":  # a HEAD or an empty body stalls before the answer
                proxy.count(fault)
                time.sleep(proxy.stall)
                self.close_connection = True
                return
            proxy.count("passed")
            return self._reply(resp.status, data, passed, content_type=None,
                               length=int(length) if length else None)
        proxy.count(fault)
        self.send_response(resp.status)
        for k, v in passed.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        if fault == "stall":  # half the body, then nothing for a while, then gone
            time.sleep(proxy.stall)
        elif fault == "reset-mid-body":
            _reset(self.connection)
        self.close_connection = True  # "truncated": a clean close, half the body sent

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


@dataclass
class FaultProxy:
    """A loopback proxy in front of ``upstream`` answering about ``rate`` of the requests with
    one of ``faults`` (deterministic for a given ``seed``; see the module's docstring).
    ``stall`` is how long a stalled answer hangs before the connection is closed."""

    upstream_url: str
    rate: float = 0.0
    seed: int = 0
    faults: tuple[str, ...] = FAULTS
    stall: float = 1.5
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.upstream = urlparse(self.upstream_url)
        self.lock = threading.Lock()
        self._attempts: Counter = Counter()
        self._httpd = _serve(_ProxyHandler, self)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def decide(self, method: str, path: str, rng: str) -> str | None:
        key = f"{method} {path} {rng}"
        with self.lock:
            self._attempts[key] += 1
            n = self._attempts[key]
        r = random.Random(f"{self.seed}|{key}|{n}")
        if r.random() >= self.rate:
            return None
        return r.choice(self.faults)

    def attempts(self) -> Counter:
        """How many times each request was seen (what the next decisions depend on)."""
        with self.lock:
            return Counter(self._attempts)

    def reset(self, attempts: Counter | None = None, rate: float = 0.0) -> None:
        """Back to having seen ``attempts`` (none: as new), nothing counted, faults at
        ``rate``: the same requests then meet the same faults again."""
        with self.lock:
            self._attempts = Counter(attempts or {})
            self.counts.clear()
            self.rate = rate

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    @property
    def faults_injected(self) -> int:
        return sum(v for k, v in self.counts.items() if k != "passed")

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

#!/usr/bin/python3
"""Connections against the real server (issue 16, "Server resources are bounded per tenant" and
"Idle connections cost no thread"), black-box.

Usage:
  test_connections.py --pycell PATH [unittest arguments]

Each test class starts its own `pycell serve` with a configuration file that sets the limits it
tries. Every 127.x.y.z address is this machine, so a client socket bound to 127.0.0.2 is another
client address than 127.0.0.1 for the server.

- the overload 503 (server.max_connections) is a well-formed HTTP response, its Content-Length its
  body's length;
- X-Forwarded-For names the client only from server.trusted_proxies (the audit log's source
  address, the failed-key lockout), and the lockout never refuses a valid key.

Only the standard library.
"""

import http.client
import json
import os
import resource
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)

PYCELL = None
RUNTIME_DIR = "/run/pycell-connections-tests"
WRONG_KEY = "pyc_%s_%s" % ("0" * 26, "0" * 32)


def raise_descriptor_limit():
    """This process holds a thousand sockets at once: its soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def thread_count(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def closed_within(sock, seconds):
    """Waits up to `seconds` for the server to close `sock` (EOF or reset): the time it took, or
    None when it was still open. Whatever the server sends first is read and dropped."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
    return None


def sse_events(response):
    """(event, data as JSON, monotonic arrival time) for each Server-Sent Event."""
    event, data = None, []
    while True:
        line = response.readline()
        if not line:
            return
        line = line.decode("utf-8").rstrip("\r\n")
        if line == "":
            if event is not None or data:
                yield event or "message", json.loads("\n".join(data)), time.monotonic()
            event, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


def read_response(sock, timeout=10):
    """Reads one whole HTTP/1.1 response from `sock`, by its Content-Length, and checks its
    framing: (status, {lower-case header: value}, body bytes). Raises AssertionError when the
    head is malformed, the length is missing or does not match what the server sent before it
    closed."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("the connection closed before a whole head: %r" % data)
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] != "HTTP/1.1" or not parts[1].isdigit():
        raise AssertionError("not an HTTP/1.1 status line: %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise AssertionError("not a header line: %r" % line)
        headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:
        raise AssertionError("no Content-Length: %r" % head)
    length = int(headers["content-length"])
    body = rest
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    if len(body) != length:
        raise AssertionError("Content-Length %d, but the body has %d bytes: %r" %
                             (length, len(body), body))
    # Nothing may follow the body: the server closes after a refusal.
    sock.settimeout(2)
    try:
        extra = sock.recv(65536)
    except (socket.timeout, ConnectionResetError):
        extra = b""
    if extra:
        raise AssertionError("%d bytes after the declared body: %r" % (len(extra), extra))
    return int(parts[1]), headers, body


class ServerCase(pycell_server.HttpAssertions, unittest.TestCase):
    """A test class with its own server, started with CONFIG (a [server] table's body)."""

    CONFIG = ""
    READY_SESSIONS = 0

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="pycell-connections-tests-")
        data = os.path.join(cls.work, "data")
        os.makedirs(data)
        config = os.path.join(cls.work, "pycell.toml")
        with open(config, "w") as f:
            f.write("[server]\n" + cls.CONFIG + "\n")
        cls.server = pycell_server.ServeProcess(PYCELL, data, RUNTIME_DIR,
                                                os.path.join(cls.work, "server.log"))
        try:
            cls.server.start(extra_args=("--config", config), ready_sessions=cls.READY_SESSIONS)
        except BaseException:
            if cls.server.proc is not None and cls.server.proc.poll() is None:
                cls.server.kill()
            raise
        cls.admin = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server.proc is not None and cls.server.proc.poll() is None:
                rc = cls.server.stop(timeout=60)
                if rc != 0:
                    raise AssertionError("after SIGTERM the server exited %s\n%s" %
                                         (rc, cls.server.log_tail()))
        finally:
            if os.environ.get("PYCELL_API_KEEP") is None:
                shutil.rmtree(cls.work, ignore_errors=True)

    def connect(self, source="127.0.0.1", timeout=10):
        """A TCP connection to the server from `source` (any 127.x address is this machine)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect((self.server.host, self.server.port))
        return sock

    def request(self, method, path, source="127.0.0.1", key=None, headers=None, body=b"",
                timeout=10):
        """One request on a new connection from `source`, with `key` (the admin key by default;
        "" for none): (status, headers, body, seconds)."""
        started = time.monotonic()
        sock = self.connect(source, timeout)
        try:
            key = self.server.admin_key if key is None else key
            lines = ["%s %s HTTP/1.1" % (method, path), "Host: x", "Connection: close"]
            if key:
                lines.append("Authorization: Bearer " + key)
            for name, value in (headers or {}).items():
                lines.append("%s: %s" % (name, value))
            if body or method in ("POST", "PUT", "PATCH"):
                lines.append("Content-Length: %d" % len(body))
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            status, reply_headers, reply_body = read_response(sock, timeout)
            return status, reply_headers, reply_body, time.monotonic() - started
        finally:
            sock.close()

    def get_ok(self, path="/v1/me", source="127.0.0.1", timeout=10):
        """GET `path` with the admin key on a new connection from `source`: (status, seconds)."""
        status, _, _, seconds = self.request("GET", path, source, timeout=timeout)
        return status, seconds

    def assertRefused503(self, sock):
        """The server answered `sock` with a well-formed 503 and closed it; its message."""
        status, headers, body = read_response(sock)
        self.assertEqual(status, 503, body)
        self.assertTrue(headers.get("content-type", "").startswith("application/json"), headers)
        self.assertEqual(headers.get("connection", "").lower(), "close", headers)
        self.assertTrue(headers.get("retry-after", "").isdigit(), headers)
        error = json.loads(body.decode("utf-8"))["error"]
        self.assertEqual(error["code"], "unavailable", body)
        self.assertIn("connections", error["message"], body)
        return error["message"]


class TestOverload(ServerCase):
    CONFIG = "max_connections = 8\n"

    def test_the_503_past_max_connections_is_well_formed(self):
        held = []
        try:
            # 8 connections are served (each answers a request), and stay open.
            for _ in range(8):
                sock = self.connect()
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                sock.settimeout(10)
                self.assertIn(b"200", sock.recv(65536)[:20])
                held.append(sock)
            # The 9th is refused with a complete, exact 503.
            extra = self.connect()
            held.append(extra)
            self.assertRefused503(extra)
        finally:
            for sock in held:
                sock.close()
        # Once they are closed, the server serves again.
        deadline = time.monotonic() + 10
        while True:
            status, _ = self.get_ok("/healthz")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(status, 200)


class TestTrustedProxies(ServerCase):
    CONFIG = 'trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]\n'

    def denied_event(self, request_id):
        query = urllib.parse.urlencode({"action": "auth.denied", "limit": 1000})
        reply = self.admin.get("/v1/audit?" + query)
        self.assertEqual(reply.status, 200, reply)
        for event in reply.json()["data"]:
            if event.get("request_id") == request_id:
                return event
        self.fail("no auth.denied event for request %s" % request_id)

    def test_x_forwarded_for_names_the_client_only_from_a_trusted_proxy(self):
        # From the trusted proxy 127.0.0.1: the rightmost address not trusted.
        status, headers, _, _ = self.request(
            "GET", "/v1/me", "127.0.0.1", key=WRONG_KEY,
            headers={"X-Forwarded-For": "203.0.113.66, 198.51.100.7, 10.1.2.3"})
        self.assertEqual(status, 401)
        detail = self.denied_event(headers["x-request-id"]).get("detail") or {}
        self.assertEqual(detail.get("peer"), "198.51.100.7", detail)
        # From 127.0.0.2, not trusted: the header is ignored, whatever it says.
        status, headers, _, _ = self.request(
            "GET", "/v1/me", "127.0.0.2", key=WRONG_KEY,
            headers={"X-Forwarded-For": "198.51.100.8"})
        self.assertEqual(status, 401)
        detail = self.denied_event(headers["x-request-id"]).get("detail") or {}
        self.assertEqual(detail.get("peer"), "127.0.0.2", detail)

    def test_the_lockout_refuses_failures_and_never_a_valid_key(self):
        # Through the proxy, one client (198.51.100.9) sends wrong keys until it is locked out.
        via = {"X-Forwarded-For": "198.51.100.9"}
        statuses = [self.request("GET", "/v1/me", key=WRONG_KEY, headers=via)[0]
                    for _ in range(21)]
        self.assertEqual(statuses[:20], [401] * 20)
        self.assertEqual(statuses[20], 429)
        status, headers, _, _ = self.request("GET", "/v1/me", key=WRONG_KEY, headers=via)
        self.assertEqual(status, 429)
        self.assertTrue(headers.get("retry-after", "").isdigit(), headers)
        # Its valid key still gets in; so does everyone else behind the same proxy.
        self.assertEqual(self.request("GET", "/v1/me", headers=via)[0], 200)
        self.assertEqual(self.request("GET", "/v1/me")[0], 200)
        other = {"X-Forwarded-For": "198.51.100.10"}
        self.assertEqual(self.request("GET", "/v1/me", key=WRONG_KEY, headers=other)[0], 401)
        self.assertEqual(self.request("GET", "/v1/me", headers=other)[0], 200)
        # Directly, without a proxy: 127.0.0.4 locked out, its valid key still served.
        for _ in range(20):
            self.request("GET", "/v1/me", "127.0.0.4", key=WRONG_KEY)
        self.assertEqual(self.request("GET", "/v1/me", "127.0.0.4", key=WRONG_KEY)[0], 429)
        self.assertEqual(self.request("GET", "/v1/me", "127.0.0.4", key="")[0], 429)
        self.assertEqual(self.request("GET", "/v1/me", "127.0.0.4")[0], 200)


if __name__ == "__main__":
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest)

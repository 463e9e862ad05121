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
- 1000 idle connections from 127.0.0.2 cost the server no thread each, while requests with the
  admin key from 127.0.0.1 are answered at once; SIGTERM still stops it at once;
- server.max_connections_per_address refuses the 65th connection from 127.0.0.2 (a 503 naming the
  limit), not one from 127.0.0.1, and again admits 127.0.0.2 once one of its connections closed;
- a connection that sends no head, part of one, or its head byte by byte, is closed after
  server.header_timeout_s; a kept-alive connection may wait longer between requests;
- a body slower than server.min_body_rate is cut off (408), with a valid key, on a buffered route
  and on an upload; a body at the rate goes through;
- Server-Sent Events still stream: an execution shows its first output before the cell ends;
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
                # Whatever the class did to the connections, no exception escaped the server's
                # handlers or threads (pycell_internal_errors_total, issue 16).
                scrape = cls.admin.get("/metrics")
                if scrape.status != 200:
                    raise AssertionError("GET /metrics: %r" % scrape)
                errors = [line for line in scrape.body.decode().splitlines()
                          if line.startswith("pycell_internal_errors_total")]
                if not errors or any(float(line.rsplit(" ", 1)[1]) != 0 for line in errors):
                    raise AssertionError("internal errors counted: %r\n%s" %
                                         (errors, cls.server.log_tail()))
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


class TestIdleConnections(ServerCase):
    IDLE = 1000
    CONFIG = ("max_connections_per_address = 2000\n"
              "header_timeout_s = 120\n")

    def test_a_thousand_idle_connections_cost_no_thread_and_block_nobody(self):
        raise_descriptor_limit()
        pid = self.server.proc.pid
        # The server at rest, after serving a few requests (its workers started).
        for _ in range(5):
            self.assertEqual(self.get_ok()[0], 200)
        threads_before = thread_count(pid)
        idle = []
        try:
            for i in range(self.IDLE):
                idle.append(self.connect("127.0.0.2"))
                # Half of them sent part of a head, as a slow client does.
                if i % 2:
                    idle[-1].sendall(b"GET /v1/me HTTP/1.1\r\nHost: x\r\n")
            time.sleep(1)  # Let the server accept every one of them.
            threads_idle = thread_count(pid)
            self.assertLess(threads_idle - threads_before, 20,
                            "the server went from %d to %d threads with %d idle connections" %
                            (threads_before, threads_idle, self.IDLE))
            latencies = []
            for _ in range(50):
                status, seconds = self.get_ok()
                self.assertEqual(status, 200)
                latencies.append(seconds)
            latencies.sort()
            self.assertLess(latencies[len(latencies) // 2], 0.1, latencies)
            self.assertLess(latencies[-1], 1.0, latencies)
            # Every idle connection is still open and still served when it finally asks.
            for sock in idle[1:20:2]:
                sock.sendall(b"Authorization: Bearer " + self.server.admin_key.encode() +
                             b"\r\n\r\n")
                status, _, _ = self.read_one(sock)
                self.assertEqual(status, 200)
        finally:
            for sock in idle:
                sock.close()

    def read_one(self, sock):
        """One response on a kept-alive connection: (status, headers, body)."""
        response = http.client.HTTPResponse(sock, method="GET")
        response.begin()
        return response.status, dict(response.getheaders()), response.read()

    def test_stopping_with_idle_connections_open_is_quick(self):
        raise_descriptor_limit()
        # Last in the class (names sort): the server is stopped here, the class's teardown finds
        # it stopped.
        idle = [self.connect("127.0.0.2") for _ in range(200)]
        try:
            time.sleep(0.5)
            started = time.monotonic()
            rc = self.server.stop(timeout=30)
            self.assertEqual(rc, 0, self.server.log_tail())
            self.assertLess(time.monotonic() - started, 10)
            # Every idle connection was closed by the server.
            for sock in idle[:10]:
                self.assertIsNotNone(closed_within(sock, 5))
        finally:
            for sock in idle:
                sock.close()


class TestPerAddressLimit(ServerCase):
    CONFIG = "header_timeout_s = 120\n"  # max_connections_per_address: the default, 64.

    def test_the_65th_connection_from_one_address_is_refused_not_anothers(self):
        held = []
        try:
            for _ in range(64):
                held.append(self.connect("127.0.0.2"))
            time.sleep(0.5)
            # 127.0.0.2 is at its limit: its next connection gets a 503 naming it, and closes.
            extra = self.connect("127.0.0.2")
            message = self.assertRefused503(extra)
            extra.close()
            self.assertIn("max_connections_per_address", message)
            # Another address is served as usual, with a key, at once.
            status, seconds = self.get_ok(source="127.0.0.1")
            self.assertEqual(status, 200)
            self.assertLess(seconds, 1.0)
            status, _ = self.get_ok(source="127.0.0.3")
            self.assertEqual(status, 200)
            # One of 127.0.0.2's connections closes: it may open one again.
            held.pop().close()
            deadline = time.monotonic() + 10
            while True:
                try:
                    status, _ = self.get_ok(source="127.0.0.2")
                except (AssertionError, OSError):
                    status = None
                if status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(status, 200)
            # A connection that is being served counts too: a 64th that sends a request still
            # leaves 127.0.0.2 at its limit.
            busy = self.connect("127.0.0.2")
            held.append(busy)
            time.sleep(0.3)
            self.assertRefused503(self.connect("127.0.0.2"))
        finally:
            for sock in held:
                sock.close()


class TestHeadDeadline(ServerCase):
    CONFIG = ("header_timeout_s = 2\n"
              "keep_alive_timeout_s = 30\n")

    def test_a_connection_that_sends_no_head_is_closed_after_header_timeout(self):
        sock = self.connect()
        try:
            took = closed_within(sock, 10)
            self.assertIsNotNone(took, "still open after 10 s")
            self.assertGreater(took, 1.5)
            self.assertLess(took, 5)
        finally:
            sock.close()

    def test_a_partial_head_is_closed_after_header_timeout(self):
        sock = self.connect()
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            took = closed_within(sock, 10)
            self.assertIsNotNone(took, "still open after 10 s")
            self.assertLess(took, 5)
        finally:
            sock.close()

    def test_a_head_sent_byte_by_byte_does_not_reset_the_deadline(self):
        sock = self.connect()
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 200 + b"\r\n\r\n"
        started = time.monotonic()
        closed = False
        try:
            for byte in head:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.05)  # 240 bytes: 12 s if the server waited for all of them.
                if time.monotonic() - started > 8:
                    break
            took = closed_within(sock, 8) if not closed else 0
            self.assertIsNotNone(took, "the byte-by-byte head was not cut off")
            self.assertLess(time.monotonic() - started, 9)
        finally:
            sock.close()

    def test_a_kept_alive_connection_may_wait_longer_between_requests(self):
        sock = self.connect()
        try:
            for _ in range(2):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                response = http.client.HTTPResponse(sock, method="GET")
                response.begin()
                self.assertEqual(response.status, 200)
                response.read()
                time.sleep(3)  # Longer than header_timeout, shorter than keep_alive_timeout.
        finally:
            sock.close()


class TestSlowBody(ServerCase):
    # A window of the minimum rate is 10 s of waiting for the body.
    CONFIG = ('min_body_rate = 200\n'
              "request_timeout_s = 60\n")

    def slow_request(self, path, total, rate, content_type="application/json"):
        """Sends a body of `total` bytes at `rate` bytes/s (in pieces every 0.25 s) with the
        admin key: (status or None when the server just closed, seconds)."""
        sock = self.connect(timeout=60)
        started = time.monotonic()
        try:
            sock.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"
                          "Content-Length: %d\r\n" % (path, content_type, total)).encode() +
                         self.admin.auth_line() + b"\r\n")
            sent = 0
            piece = max(1, int(rate / 4))
            while sent < total:
                n = min(piece, total - sent)
                try:
                    sock.sendall(b" " * n if content_type == "application/json" else b"a" * n)
                except OSError:
                    break
                sent += n
                time.sleep(0.25)
                if time.monotonic() - started > 40:
                    break
            try:
                status, _, body = read_response(sock, 30)
            except (AssertionError, OSError):
                return None, time.monotonic() - started, sent
            return status, time.monotonic() - started, sent
        finally:
            sock.close()

    def test_a_slow_buffered_body_with_a_valid_key_is_cut_off(self):
        status, seconds, sent = self.slow_request("/v1/sessions", 100000, 20)
        self.assertIn(status, (408, None))
        self.assertLess(seconds, 25)
        self.assertLess(sent, 100000)

    def test_a_slow_upload_with_a_valid_key_is_cut_off(self):
        status, seconds, sent = self.slow_request("/v1/files?filename=slow.txt", 100000, 20,
                                                  content_type="text/plain")
        self.assertIn(status, (408, None))
        self.assertLess(seconds, 25)
        # The server did not keep the part it was sent.
        files = self.admin.get("/v1/files?limit=100").json()["data"]
        self.assertNotIn("slow.txt", [f["filename"] for f in files])

    def test_a_body_at_the_minimum_rate_goes_through(self):
        # 12 s at twice the minimum: across one whole window.
        body_text = "a,b\n" + "1,2\n" * 1199
        status, _, _, _ = self.request("GET", "/healthz")
        self.assertEqual(status, 200)
        status, seconds, sent = self.slow_request("/v1/files?filename=steady.csv",
                                                  len(body_text), 400, content_type="text/csv")
        self.assertEqual(status, 201)
        self.assertGreater(seconds, 10)


class TestStreaming(ServerCase):
    READY_SESSIONS = 1

    def test_server_sent_events_arrive_before_the_cell_ends(self):
        created = self.admin.create_session()
        self.assertEqual(created.status, 201, created)
        session_id = created.json()["id"]
        try:
            conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=60)
            started = time.monotonic()
            conn.request("POST", "/v1/sessions/%s/executions" % session_id,
                         body=json.dumps({"code": "import time\nprint('first', flush=True)\n"
                                                  "time.sleep(2)\nprint('second')\n'done'"}),
                         headers=dict(self.admin.auth_headers(),
                                      **{"Content-Type": "application/json",
                                         "Accept": "text/event-stream"}))
            response = conn.getresponse()
            self.assertEqual(response.status, 200)
            events = list(sse_events(response))
            conn.close()
        finally:
            self.admin.delete("/v1/sessions/" + session_id)
        names = [e[0] for e in events]
        self.assertEqual(names[-1], "execution", names)
        first = next(e for e in events if e[0] == "stdout")
        self.assertIn("first", first[1]["text"])
        # The first print arrived while the cell still slept.
        self.assertGreater(events[-1][2] - first[2], 1.5, names)
        self.assertLess(first[2] - started, events[-1][2] - started - 1.5)


class TestTrustedProxies(ServerCase):
    CONFIG = 'trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]\nheader_timeout_s = 30\n'

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

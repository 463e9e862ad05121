#!/usr/bin/python3
"""pycell's REST API, black-box: a real `pycell serve` on a free port with a temporary data dir.

Usage:
  test_api.py --pycell PATH [unittest arguments, e.g. -v or -k Files]

One server runs for the whole module (started in setUpModule, stopped with SIGTERM in
tearDownModule, which checks it exits 0 and prints `pycell serve: stopped` last). The restart
tests run a second server of their own on another data dir and kill it with SIGKILL.

Only the standard library: requests are built with http.client, multipart bodies by hand, and
the PNG a cell draws is decoded with zlib and struct.

Sessions are real sandboxes and cells real Python, so tests share a session wherever they do not
need a fresh one (each class makes the few it needs in setUpClass).
"""

import csv
import http.client
import io
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)
from pycell_server import (RFC3339_RE, Client, Reply, alive, descendants,  # noqa: E402
                           describe, headers_of, multipart_body, sha256, unique)

PYCELL = None  # The binary, from --pycell.
WORK_DIR = None  # Temporary folder of this run: data dirs, logs, host-side decoys.
SERVER = None  # The module's server.
API = None  # A client of it.

RUNTIME_DIR = "/run/pycell-api-tests"
RESTART_RUNTIME_DIR = "/run/pycell-api-tests-restart"
STOPPED_LINE = pycell_server.STOPPED_LINE
# Prefix and 26 characters of lower-case Crockford base32 (src/common/ids.h).
ID_RE = {p: re.compile("^" + p + "[0-9a-hjkmnp-tv-z]{26}$") for p in ("file_", "sess_", "exec_")}
# An id of the right shape that no server ever issued (the time part is 0).
MISSING_FILE_ID = "file_" + "0" * 26
MISSING_SESSION_ID = "sess_" + "0" * 26
MISSING_EXECUTION_ID = "exec_" + "0" * 26


# --- the server ------------------------------------------------------------------------------


class Server(pycell_server.ServeProcess):
    """The module's server; start() returns a Client of it with the admin key."""

    def __init__(self, data_dir, runtime_dir, log_path):
        super().__init__(PYCELL, data_dir, runtime_dir, log_path)

    def start(self, **kw):
        super().start(**kw)
        return Client(self.host, self.port, self.admin_key)


# --- HTTP (Client, Reply, multipart_body: tests/pycell_server.py) ---------------------------


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


# --- data the tests make ---------------------------------------------------------------------

REGIONS = ["central", "east", "north", "south", "west"]


def sales_csv(rows=3000, seed=20240601):
    """A CSV of (region, month, amount) and the expected sum per region, in cents."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["region", "month", "amount"])
    sums = {r: 0 for r in REGIONS}
    for _ in range(rows):
        region = rng.choice(REGIONS)
        month = "2024-%02d" % rng.randint(1, 12)
        cents = rng.randint(100, 500000)
        sums[region] += cents
        writer.writerow([region, month, "%d.%02d" % (cents // 100, cents % 100)])
    return out.getvalue().encode(), sums


def png_chunks(data):
    """The PNG's chunks as (type, payload), each CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature: %r" % data[:8]
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        payload = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert len(payload) == length, "chunk %r is cut short" % kind
        assert zlib.crc32(kind + payload) & 0xffffffff == crc, "bad CRC in chunk %r" % kind
        chunks.append((kind, payload))
        pos += 12 + length
    return chunks


# --- module setup ----------------------------------------------------------------------------


def setUpModule():
    global SERVER, API, WORK_DIR
    WORK_DIR = tempfile.mkdtemp(prefix="pycell-api-tests-")
    data_dir = os.path.join(WORK_DIR, "data")
    os.makedirs(data_dir)
    SERVER = Server(data_dir, RUNTIME_DIR, os.path.join(WORK_DIR, "server.log"))
    try:
        API = SERVER.start()
    except BaseException:
        if SERVER.proc and SERVER.proc.poll() is None:
            SERVER.kill()
        raise


def tearDownModule():
    try:
        if SERVER is None or SERVER.proc is None or SERVER.proc.poll() is not None:
            return
        # The server still answers after every test.
        health = API.get("/healthz", timeout=10)
        rc = SERVER.stop(timeout=60)
        problems = []
        if health.status != 200:
            problems.append("GET /healthz before stopping: %r" % health)
        if rc != 0:
            problems.append("after SIGTERM the server exited %s (want 0 within 60 s)" % rc)
        if SERVER.last_stdout_line() != STOPPED_LINE:
            problems.append("its stdout does not end with %r: %r" %
                            (STOPPED_LINE, SERVER.stdout_lines[-5:]))
        if problems:
            raise AssertionError("; ".join(problems) + "\n" + SERVER.log_tail())
    finally:
        if os.environ.get("PYCELL_API_KEEP") is None:
            shutil.rmtree(WORK_DIR, ignore_errors=True)


class ApiTestCase(pycell_server.HttpAssertions, unittest.TestCase):
    maxDiff = 4000

    def assertHealthy(self, client=None):
        reply = (client or API).get("/healthz", timeout=10)
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.json(), {"status": "ok"})

    def assertTime(self, value, nullable=False):
        if nullable and value is None:
            return
        self.assertIsInstance(value, str)
        self.assertRegex(value, RFC3339_RE)

    def assertId(self, value, prefix):
        self.assertIsInstance(value, str)
        self.assertRegex(value, ID_RE[prefix])

    def new_session(self, **body):
        reply = API.create_session(**body)
        self.assertEqual(reply.status, 201, reply)
        session = reply.json()
        self.addCleanup(API.delete, "/v1/sessions/" + session["id"])
        return session

    def run_ok(self, session_id, code, **kw):
        reply = API.execute(session_id, code, **kw)
        self.assertEqual(reply.status, 200, reply)
        record = reply.json()
        self.assertEqual(record["status"], "ok", record)
        return record


def wait_for_session_file(test, client, session_id, name, timeout=30):
    """Waits until a running cell has written /mnt/data/NAME (so it is surely running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = client.get("/v1/sessions/%s/files" % session_id)
        test.assertEqual(reply.status, 200, reply)
        if "/mnt/data/" + name in [f["path"] for f in reply.json()["data"]]:
            return
        time.sleep(0.05)
    test.fail("the cell did not write /mnt/data/%s within %d s" % (name, timeout))


def result_text(record):
    for output in record["outputs"]:
        if output.get("output_type") == "execute_result":
            return output["data"].get("text/plain")
    return None


# --- health, discovery, routing --------------------------------------------------------------


class SharedSessionTestCase(ApiTestCase):
    """One session for the whole class, in self.session_id."""

    @classmethod
    def setUpClass(cls):
        reply = API.create_session()
        assert reply.status == 201, reply
        cls.session_id = reply.json()["id"]

    @classmethod
    def tearDownClass(cls):
        API.delete("/v1/sessions/" + cls.session_id)


class TestHealthAndRouting(ApiTestCase):
    def test_healthz(self):
        reply = API.get("/healthz")
        self.assertEqual(reply.status, 200)
        self.assertTrue(reply.header("content-type").startswith("application/json"))
        self.assertEqual(reply.json(), {"status": "ok"})
        self.assertTrue(reply.header("x-request-id"), "every answer carries X-Request-Id")

    def test_head_healthz(self):
        reply = API.request("HEAD", "/healthz")
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.body, b"")

    def test_readyz(self):
        reply = API.get("/readyz")
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.json(), {"status": "ready"})

    def test_openapi(self):
        reply = API.get("/openapi.json")
        self.assertEqual(reply.status, 200)
        self.assertTrue(reply.header("content-type").startswith("application/json"))
        spec = reply.json()
        self.assertIsInstance(spec, dict)
        self.assertIn("openapi", spec)
        self.assertTrue(str(spec["openapi"]).startswith("3."), spec["openapi"])
        # Every reference names something the document defines.
        def refs(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "$ref":
                        yield value
                    else:
                        yield from refs(value)
            elif isinstance(node, list):
                for value in node:
                    yield from refs(value)
        for ref in set(refs(spec)):
            target = spec
            for part in ref.lstrip("#/").split("/"):
                self.assertIn(part, target, "unresolved $ref " + ref)
                target = target[part]
        for path in ("/v1/sessions/{id}/fork", "/v1/sessions/{id}/replay", "/v1/files"):
            self.assertIn(path, spec["paths"])
        self.assertIn("507", spec["paths"]["/v1/files"]["post"]["responses"])

    def test_unknown_route(self):
        for path in ("/v1/nope", "/v2/files", "/", "/v1/files/%s/content/extra" % MISSING_FILE_ID):
            with self.subTest(path=path):
                self.assertError(API.get(path), 404, "not_found")

    def test_wrong_method(self):
        cases = [("PUT", "/v1/files", {"GET", "POST"}),
                 ("PATCH", "/v1/sessions", {"GET", "POST"}),
                 ("DELETE", "/healthz", {"GET"}),
                 ("POST", "/v1/files/" + MISSING_FILE_ID, {"GET", "DELETE"}),
                 ("DELETE", "/v1/executions/" + MISSING_EXECUTION_ID, {"GET"})]
        for method, path, allowed in cases:
            with self.subTest(method=method, path=path):
                reply = API.request(method, path, body=b"")
                self.assertError(reply, 405, "method_not_allowed")
                allow = reply.header("allow")
                self.assertIsNotNone(allow, "a 405 needs an Allow header")
                self.assertEqual({m.strip() for m in allow.split(",")}, allowed)

    def test_requests_with_bodies_are_answered(self):
        # Regression: with Boost 1.74, parser.body_limit(boost::none) refused every request that
        # had a Content-Length (beast#2070): 400 "body limit exceeded", or no answer at all.
        for length in (0, 2):
            with self.subTest(content_length=length):
                reply = API.raw_exchange((
                    "POST /v1/sessions/%s/executions HTTP/1.1\r\nHost: x\r\n%s"
                    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" %
                    (MISSING_SESSION_ID, API.auth_line().decode(), length,
                     "{}"[:length])).encode())
                # Handled by the route: the body lacks code (400 naming it).
                self.assertError(reply, 400, "invalid_request", "code")
        reply = API.upload_raw(unique("small", "txt"), b"small body\n")
        self.assertEqual(reply.status, 201, reply)

    def test_encoded_slash_in_id(self):
        self.assertError(API.get("/v1/files/..%2F..%2Fetc%2Fpasswd"), 400, "invalid_request")

    def test_malformed_request_line(self):
        reply = API.raw_exchange(b"THIS IS NOT HTTP\r\n\r\n")
        self.assertEqual(reply.status, 400, reply)
        self.assertHealthy()


class TestHostileHttp(ApiTestCase):
    """Framing attacks on the HTTP layer itself: each gets a clear 4xx (or a closed
    connection), never a crash, and the server goes on serving."""

    def exchange_all(self, data, expected, timeout=20):
        """Sends `data` at once and reads up to `expected` responses from the same socket."""
        sock = socket.create_connection((API.host, API.port), timeout)
        replies = []

        shared = sock.makefile("rb")

        class KeptOpen:  # HTTPResponse closes its file when a body ends; the next needs it.
            def __getattr__(self, name):
                return getattr(shared, name)

            def close(self):
                pass

        class OneReader:  # Every response reads from one buffered file: pipelined answers
            def makefile(self, mode):  # arrive together and must not be lost between them.
                return KeptOpen()

        try:
            sock.sendall(data)
            for _ in range(expected):
                response = http.client.HTTPResponse(OneReader(), method="GET")
                try:
                    response.begin()
                except (http.client.RemoteDisconnected, ConnectionResetError):
                    break
                replies.append(Reply(response.status, headers_of(response), response.read()))
                if response.will_close:
                    break
        finally:
            sock.close()
        return replies

    def test_pipelined_requests_are_answered_in_order(self):
        replies = self.exchange_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                                    b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n" +
                                    API.auth_line() + b"\r\n"
                                    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 3)
        self.assertEqual([r.status for r in replies], [200, 404, 200])

    def test_a_body_that_looks_like_a_request_is_not_smuggled(self):
        hidden = b"DELETE /v1/files/file_00000000000000000000000000 HTTP/1.1\r\nHost: x\r\n\r\n"
        body = json.dumps({"code": hidden.decode()}).encode()
        data = (b"POST /v1/sessions/sess_00000000000000000000000000/executions HTTP/1.1\r\n"
                b"Host: x\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (API.auth_line(), len(body))) + body + (
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        replies = self.exchange_all(data, 3)  # A third answer would be the smuggled request's.
        self.assertEqual([r.status for r in replies], [404, 200])

    def test_content_length_with_transfer_encoding_is_refused(self):
        data = (b"POST /v1/files?filename=a.csv HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n" +
                API.auth_line() + b"Transfer-Encoding: chunked\r\n\r\n4\r\na,b\n\r\n0\r\n\r\n")
        replies = self.exchange_all(data, 2)
        self.assertTrue(replies, "no answer")
        self.assertEqual(replies[0].status, 400, replies[0])
        self.assertHealthy()

    def test_two_different_content_lengths_are_refused(self):
        data = (b"POST /v1/files?filename=a.csv HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n" +
                API.auth_line() + b"Content-Length: 40\r\n\r\na,b\n")
        replies = self.exchange_all(data, 1)
        self.assertTrue(replies, "no answer")
        self.assertEqual(replies[0].status, 400, replies[0])
        self.assertHealthy()

    def test_a_chunked_upload_is_stored_whole(self):
        content = b"region,amount\n" + b"north,1\n" * 5000
        chunks = b""
        for i in range(0, len(content), 7001):
            piece = content[i:i + 7001]
            chunks += b"%x\r\n" % len(piece) + piece + b"\r\n"
        name = unique("chunked", "csv")
        data = (b"POST /v1/files?filename=%s HTTP/1.1\r\nHost: x\r\n%s"
                b"Transfer-Encoding: chunked\r\n\r\n" % (name.encode(), API.auth_line()))
        data += chunks + b"0\r\n\r\n"
        replies = self.exchange_all(data, 1)
        self.assertEqual(replies[0].status, 201, replies[0])
        self.assertEqual(replies[0].json()["sha256"], sha256(content))
        self.assertEqual(replies[0].json()["bytes"], len(content))

    def test_an_absurd_chunk_size_is_refused(self):
        data = (b"POST /v1/files?filename=a.csv HTTP/1.1\r\nHost: x\r\n" + API.auth_line() +
                b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n")
        replies = self.exchange_all(data, 1)
        if replies:
            self.assertIn(replies[0].status, (400, 413), replies[0])
        self.assertHealthy()

    def test_a_chunked_body_past_the_json_limit_is_413(self):
        piece = b"x" * (1 << 20)
        chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
        data = (b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
                API.auth_line() + b"Transfer-Encoding: chunked\r\n\r\n") + chunk * 9 + b"0\r\n\r\n"
        replies = self.exchange_all(data, 1)
        self.assertTrue(replies, "no answer")
        self.assertEqual(replies[0].status, 413, replies[0])
        self.assertHealthy()

    def test_a_huge_head_is_431(self):
        data = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"a" * (64 << 10) +
                b"\r\n\r\n")
        replies = self.exchange_all(data, 1)
        self.assertTrue(replies, "no answer")
        self.assertEqual(replies[0].status, 431, replies[0])
        self.assertHealthy()

    def test_control_bytes_in_a_header_are_refused(self):
        replies = self.exchange_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 1)
        if replies:
            self.assertEqual(replies[0].status, 400, replies[0])
        self.assertHealthy()

    def test_idle_and_half_sent_connections_do_not_block_others(self):
        socks = []
        try:
            for i in range(40):
                sock = socket.create_connection((API.host, API.port), 10)
                if i % 2:
                    sock.sendall(b"POST /v1/files?filename=a.csv HTTP/1.1\r\nHost: x\r\n")
                socks.append(sock)
            for _ in range(5):
                self.assertHealthy()
        finally:
            for sock in socks:
                sock.close()
        self.assertHealthy()


# --- files -----------------------------------------------------------------------------------


class TestFiles(ApiTestCase):
    @classmethod
    def setUpClass(cls):
        cls.csv_name = unique("sales", "csv")
        cls.csv_data, _ = sales_csv(rows=200, seed=7)
        reply = API.upload_multipart(cls.csv_name, cls.csv_data,
                                     extra_fields=[("purpose", None, None, "assistants")])
        assert reply.status == 201, reply
        cls.csv_file = reply.json()

    def check_file_object(self, f, name, data, media_type):
        self.assertEqual(f["object"], "file")
        self.assertId(f["id"], "file_")
        self.assertEqual(f["filename"], name)
        self.assertEqual(f["bytes"], len(data))
        self.assertEqual(f["sha256"], sha256(data))
        self.assertEqual(f["media_type"], media_type)
        self.assertEqual(f["purpose"], "input")
        self.assertTime(f["created_at"])
        self.assertTime(f["expires_at"], nullable=True)
        if f["expires_at"] is not None:
            self.assertGreater(f["expires_at"], f["created_at"])

    def test_multipart_upload(self):
        self.check_file_object(self.csv_file, self.csv_name, self.csv_data, "text/csv")

    def test_raw_upload(self):
        name = unique("notes", "txt")
        data = b"hello from a raw upload\n" * 50
        reply = API.upload_raw(name, data)
        self.assertEqual(reply.status, 201, reply)
        self.check_file_object(reply.json(), name, data, "text/plain")

    def test_raw_upload_json_and_png(self):
        cases = [(unique("conf", "json"), b'{"a": [1, 2, 3]}\n', "application/json"),
                 (unique("pixel", "png"), tiny_png(), "image/png")]
        for name, data, media_type in cases:
            with self.subTest(name=name):
                reply = API.upload_raw(name, data)
                self.assertEqual(reply.status, 201, reply)
                self.check_file_object(reply.json(), name, data, media_type)

    def test_utf8_filename(self):
        name = "donn\u00e9es \u00e9t\u00e9 %s.csv" % os.urandom(2).hex()
        data = b"a,b\n1,2\n"
        reply = API.upload_multipart(name, data)
        self.assertEqual(reply.status, 201, reply)
        f = reply.json()
        self.assertEqual(f["filename"], name)
        content = API.get("/v1/files/%s/content" % f["id"])
        self.assertEqual(content.status, 200)
        disposition = content.header("content-disposition")
        self.assertIn("filename*=UTF-8''" + urllib.parse.quote(name, safe=""), disposition)

    def test_empty_file(self):
        name = unique("empty", "txt")
        reply = API.upload_raw(name, b"")
        # An empty text file is a text file; if refused, the refusal must be a clean 400.
        if reply.status == 201:
            self.check_file_object(reply.json(), name, b"", "text/plain")
        else:
            self.assertError(reply, 400, "invalid_request")

    def test_same_content_twice_gives_two_files(self):
        data = b"x,y\n1,2\n3,4\n"
        a = API.upload_raw(unique("twin", "csv"), data)
        b = API.upload_raw(unique("twin", "csv"), data)
        self.assertEqual((a.status, b.status), (201, 201), (a, b))
        self.assertNotEqual(a.json()["id"], b.json()["id"])
        self.assertEqual(a.json()["sha256"], b.json()["sha256"])
        # Deleting one leaves the other's content (the blob is shared).
        self.assertEqual(API.delete("/v1/files/" + a.json()["id"]).status, 200)
        content = API.get("/v1/files/%s/content" % b.json()["id"])
        self.assertEqual(content.status, 200, content)
        self.assertEqual(content.body, data)

    def test_list(self):
        reply = API.get("/v1/files")
        self.assertEqual(reply.status, 200)
        listing = reply.json()
        self.assertEqual(listing["object"], "list")
        self.assertIsInstance(listing["data"], list)
        self.assertIn("has_more", listing)
        ids = [f["id"] for f in API.all_files()]
        self.assertIn(self.csv_file["id"], ids)
        self.assertEqual(len(ids), len(set(ids)))

    def test_list_purpose_filter(self):
        inputs = API.all_files("&purpose=input")
        self.assertIn(self.csv_file["id"], [f["id"] for f in inputs])
        self.assertTrue(all(f["purpose"] == "input" for f in inputs))
        outputs = API.all_files("&purpose=output")
        self.assertNotIn(self.csv_file["id"], [f["id"] for f in outputs])
        self.assertTrue(all(f["purpose"] == "output" for f in outputs))
        self.assertError(API.get("/v1/files?purpose=bogus"), 400, "invalid_request")

    def test_list_limit_and_pages(self):
        for _ in range(2):
            self.assertEqual(API.upload_raw(unique("page", "txt"), b"page\n").status, 201)
        first = API.get("/v1/files?limit=1")
        self.assertEqual(first.status, 200)
        first = first.json()
        self.assertEqual(len(first["data"]), 1)
        self.assertTrue(first["has_more"])
        self.assertEqual(first["last_id"], first["data"][0]["id"])
        second = API.get("/v1/files?limit=2&after=" + first["last_id"]).json()
        self.assertEqual(len(second["data"]), 2)
        self.assertNotIn(first["data"][0]["id"], [f["id"] for f in second["data"]])

    def test_list_bad_limit(self):
        for limit in ("0", "-1", "abc", "1001", "1.5", "99999999999999999999"):
            with self.subTest(limit=limit):
                self.assertError(API.get("/v1/files?limit=" + limit), 400, "invalid_request")

    def test_get(self):
        reply = API.get("/v1/files/" + self.csv_file["id"])
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.json(), self.csv_file)

    def test_content(self):
        reply = API.get("/v1/files/%s/content" % self.csv_file["id"])
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.body, self.csv_data)
        self.assertEqual(int(reply.header("content-length")), len(self.csv_data))
        self.assertTrue(reply.header("content-type").startswith("text/csv"))
        self.assertEqual(reply.header("etag"), '"%s"' % sha256(self.csv_data))
        disposition = reply.header("content-disposition")
        self.assertTrue(disposition.startswith("attachment;"), disposition)
        self.assertIn('filename="%s"' % self.csv_name, disposition)
        self.assertEqual(reply.header("x-content-type-options"), "nosniff")

    def test_head_content(self):
        reply = API.request("HEAD", "/v1/files/%s/content" % self.csv_file["id"])
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.body, b"")
        self.assertEqual(int(reply.header("content-length")), len(self.csv_data))

    def test_conditional(self):
        path = "/v1/files/%s/content" % self.csv_file["id"]
        etag = '"%s"' % sha256(self.csv_data)
        reply = API.get(path, headers={"If-None-Match": etag})
        self.assertEqual(reply.status, 304, reply)
        self.assertEqual(reply.body, b"")
        self.assertEqual(reply.header("etag"), etag)
        reply = API.get(path, headers={"If-None-Match": '"%s"' % ("0" * 64)})
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.body, self.csv_data)

    def test_ranges(self):
        path = "/v1/files/%s/content" % self.csv_file["id"]
        data, n = self.csv_data, len(self.csv_data)
        cases = [("bytes=0-9", 0, 9), ("bytes=-5", n - 5, n - 1), ("bytes=100-", 100, n - 1),
                 ("bytes=10-%d" % (n + 1000), 10, n - 1)]
        for header, first, last in cases:
            with self.subTest(range=header):
                reply = API.get(path, headers={"Range": header})
                self.assertEqual(reply.status, 206, reply)
                self.assertEqual(reply.body, data[first:last + 1])
                self.assertEqual(reply.header("content-range"), "bytes %d-%d/%d" % (first, last, n))
                self.assertEqual(int(reply.header("content-length")), last - first + 1)

    def test_range_unsatisfiable(self):
        path = "/v1/files/%s/content" % self.csv_file["id"]
        n = len(self.csv_data)
        for header in ("bytes=%d-" % n, "bytes=%d-%d" % (n + 10, n + 20), "bytes=-0"):
            with self.subTest(range=header):
                reply = API.get(path, headers={"Range": header})
                self.assertEqual(reply.status, 416, reply)
                self.assertEqual(reply.header("content-range"), "bytes */%d" % n)

    def test_range_ignored(self):
        path = "/v1/files/%s/content" % self.csv_file["id"]
        # Not a single byte range, or If-Range names another version: the whole file, 200.
        for headers in ({"Range": "bytes=0-1,5-6"}, {"Range": "items=0-1"},
                        {"Range": "bytes=0-9", "If-Range": '"%s"' % ("0" * 64)}):
            with self.subTest(headers=headers):
                reply = API.get(path, headers=headers)
                self.assertEqual(reply.status, 200, reply)
                self.assertEqual(reply.body, self.csv_data)

    def test_delete(self):
        reply = API.upload_raw(unique("doomed", "txt"), b"delete me\n")
        self.assertEqual(reply.status, 201)
        file_id = reply.json()["id"]
        reply = API.delete("/v1/files/" + file_id)
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.json(), {"id": file_id, "object": "file", "deleted": True})
        self.assertError(API.get("/v1/files/" + file_id), 404, "not_found")
        self.assertError(API.get("/v1/files/%s/content" % file_id), 404, "not_found")
        self.assertError(API.delete("/v1/files/" + file_id), 404, "not_found")
        self.assertNotIn(file_id, [f["id"] for f in API.all_files()])

    def test_unknown_and_malformed_ids(self):
        for file_id in (MISSING_FILE_ID, "file_x", "not-an-id", "sess_" + "0" * 26,
                        "file_" + "0" * 25 + "!", "file_" + "0" * 27, "%2e%2e", "."):
            for method, suffix in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
                with self.subTest(id=file_id, method=method, suffix=suffix):
                    reply = API.request(method, "/v1/files/" + file_id + suffix)
                    self.assertError(reply, 404, "not_found")


def tiny_png():
    """A valid 1x1 RGB PNG."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload +
                struct.pack(">I", zlib.crc32(kind + payload) & 0xffffffff))
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


# --- uploads that must be refused --------------------------------------------------------------


class TestUploadRefusals(ApiTestCase):
    def assertRefused(self, reply, status=400, code="invalid_request", contains=None):
        self.assertError(reply, status, code, contains)
        self.assertHealthy()

    def assertNoFileNamed(self, name):
        names = [f["filename"] for f in API.all_files()]
        self.assertNotIn(name, names)

    def test_bad_names_raw(self):
        for name in ("../evil.csv", "../../etc/passwd.txt", "a/b.csv", "/abs.csv", "..", ".",
                     "x" * 296 + ".csv"):
            with self.subTest(name=name[:40]):
                self.assertRefused(API.upload_raw(name, b"a,b\n1,2\n"))

    def test_nul_in_name_raw(self):
        reply = API.request("POST", "/v1/files?filename=a%00b.csv", body=b"a,b\n",
                            headers={"Content-Type": "application/octet-stream"})
        self.assertRefused(reply)

    def test_bad_names_multipart(self):
        for name in (b"../evil.csv", b"a/b.csv", b"a\x00b.csv", b"x" * 296 + b".csv", b".."):
            with self.subTest(name=name[:40]):
                self.assertRefused(API.upload_multipart(name, b"a,b\n1,2\n"))

    def test_non_utf8_name(self):
        name = b"caf\xe9-\xff\xfe.csv"  # Latin-1 bytes: not UTF-8.
        with self.subTest(kind="raw"):
            reply = API.request("POST", "/v1/files?filename=" + urllib.parse.quote(name),
                                body=b"a,b\n1,2\n",
                                headers={"Content-Type": "application/octet-stream"})
            self.assertRefused(reply)
        with self.subTest(kind="multipart"):
            self.assertRefused(API.upload_multipart(name, b"a,b\n1,2\n"))

    def test_control_characters_in_name(self):
        # The multipart parser refuses control characters in a filename; ?filename= must too.
        name = "a\r\nX-Evil: 1\x01.csv"
        with self.subTest(kind="raw"):
            self.assertRefused(API.upload_raw(name, b"a,b\n1,2\n"))
        with self.subTest(kind="multipart"):
            self.assertRefused(API.upload_multipart(b"a\x01b.csv", b"a,b\n1,2\n"))

    def test_extended_filename(self):
        def upload(disposition):
            boundary = "----pycell-api-test-" + os.urandom(8).hex()
            body = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; %s\r\n"
                    "Content-Type: text/csv\r\n\r\na,b\n1,2\n\r\n--%s--\r\n" %
                    (boundary, disposition, boundary)).encode()
            return API.request("POST", "/v1/files", body=body, headers={
                "Content-Type": "multipart/form-data; boundary=" + boundary})

        # filename* (RFC 5987) is decoded, and then judged like any name.
        name = "caf\u00e9-%s.csv" % os.urandom(2).hex()
        reply = upload("filename*=UTF-8''" + urllib.parse.quote(name))
        self.assertEqual(reply.status, 201, reply)
        self.assertEqual(reply.json()["filename"], name)
        for encoded in ("..%2Fevil.csv", "%2E%2E", "a%00b.csv", "%FF%FE.csv"):
            with self.subTest(encoded=encoded):
                self.assertRefused(upload("filename*=UTF-8''" + encoded))

    def test_unknown_extension(self):
        for name in ("tool.exe", "script.bat", "noextension"):
            with self.subTest(name=name):
                reply = API.upload_raw(name, b"MZ\x90\x00" + b"\x00" * 60)
                error = self.assertError(reply, 400, "invalid_request")
                if name != "noextension":
                    self.assertIn(name.rsplit(".", 1)[1], error["message"])
                self.assertHealthy()

    def test_content_does_not_match_extension(self):
        elf = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + bytes(range(256)) * 8
        zip_bytes = b"PK\x03\x04" + b"\x00" * 100
        for name, data in ((unique("x", "csv"), elf), (unique("image", "png"), b"just text\n"),
                           (unique("doc", "pdf"), b"plain words\n"),
                           (unique("table", "json"), zip_bytes)):
            with self.subTest(name=name):
                reply = API.upload_raw(name, data)
                self.assertRefused(reply)
                self.assertNoFileNamed(name)
        name = unique("x", "csv")
        self.assertRefused(API.upload_multipart(name, elf))
        self.assertNoFileNamed(name)

    def test_multipart_without_file_part(self):
        body, content_type = multipart_body([("purpose", None, None, "assistants"),
                                             ("other", "data.csv", "text/csv", "a,b\n")])
        reply = API.request("POST", "/v1/files", body=body, headers={"Content-Type": content_type})
        self.assertRefused(reply, contains="file")
        self.assertNoFileNamed("data.csv")

    def test_multipart_file_part_without_filename(self):
        body, content_type = multipart_body([("file", None, "text/csv", "a,b\n")])
        reply = API.request("POST", "/v1/files", body=body, headers={"Content-Type": content_type})
        self.assertRefused(reply)

    def test_multipart_truncated(self):
        name = unique("cut", "csv")
        body, content_type = multipart_body([("file", name, "text/csv", "a,b\n1,2\n" * 100)],
                                            close=False)
        body = body[:-10]  # Not even the part's closing CRLF.
        reply = API.request("POST", "/v1/files", body=body, headers={"Content-Type": content_type})
        self.assertRefused(reply)
        self.assertNoFileNamed(name)
        # The closing boundary alone missing (the part's data complete).
        name = unique("cut", "csv")
        body, content_type = multipart_body([("file", name, "text/csv", "a,b\n")], close=False)
        reply = API.request("POST", "/v1/files", body=body, headers={"Content-Type": content_type})
        self.assertRefused(reply)
        self.assertNoFileNamed(name)

    def test_multipart_bad_boundary(self):
        for content_type in ("multipart/form-data", "multipart/form-data; boundary=",
                             "multipart/form-data; boundary=" + "b" * 80):
            with self.subTest(content_type=content_type):
                reply = API.request("POST", "/v1/files", body=b"--x\r\n\r\n--x--\r\n",
                                    headers={"Content-Type": content_type})
                self.assertRefused(reply)

    def test_two_file_parts(self):
        first, second = unique("one", "csv"), unique("two", "csv")
        body, content_type = multipart_body([("file", first, "text/csv", "a\n1\n"),
                                             ("file", second, "text/csv", "b\n2\n")])
        reply = API.request("POST", "/v1/files", body=body, headers={"Content-Type": content_type})
        self.assertRefused(reply)
        # A refused upload leaves nothing behind, not even its first part.
        self.assertNoFileNamed(first)
        self.assertNoFileNamed(second)

    def test_raw_without_filename(self):
        self.assertRefused(API.upload_raw(None, b"a,b\n1,2\n"))
        self.assertRefused(API.request("POST", "/v1/files?filename=", body=b"a,b\n",
                                       headers={"Content-Type": "text/csv"}))

    def test_content_length_over_limit(self):
        for target, content_type in (("/v1/files?filename=huge.csv", "application/octet-stream"),
                                     ("/v1/files", "multipart/form-data; boundary=xyz")):
            with self.subTest(target=target):
                head = ("POST %s HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Type: %s\r\n"
                        "Content-Length: %d\r\n\r\n" %
                        (target, API.host, API.port, API.auth_line().decode(), content_type,
                         600 << 30)).encode()
                reply = API.raw_exchange(head, timeout=30)
                self.assertRefused(reply, 413, "payload_too_large")

    def test_json_body_over_limit(self):
        head = ("POST /v1/sessions HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (API.host, API.port, API.auth_line().decode(),
                                                  100 << 20)).encode()
        self.assertRefused(API.raw_exchange(head, timeout=30), 413, "payload_too_large")


# --- bad JSON bodies -------------------------------------------------------------------------


class TestBadBodies(SharedSessionTestCase):
    def test_create_session_bad_bodies(self):
        cases = [(b"{", "JSON"), (b"not json", "JSON"), (b"[1, 2]", "object"), (b'"x"', "object"),
                 (b"42", "object"), (b"null", "object"),
                 (b'{"bogus": 1}', "bogus"), (b'{"file_ids": "file_x"}', "file_ids"),
                 (b'{"file_ids": [1]}', "file_ids"), (b'{"metadata": "x"}', "metadata"),
                 (b'{"metadata": {"k": 5}}', "metadata"), (b'{"limits": 5}', "limits"),
                 (b'{"limits": {"memory_bytes": "1g"}}', "memory_bytes"),
                 (b'{"limits": {"memory_bytes": -1}}', "memory_bytes"),
                 (b'{"pool": 3}', "pool"), (b'{"pool": "nope"}', "nope")]
        for body, mentions in cases:
            with self.subTest(body=body):
                reply = API.post_json("/v1/sessions", raw=body)
                self.assertError(reply, 400, "invalid_request", mentions)

    def test_execute_bad_bodies(self):
        path = "/v1/sessions/%s/executions" % self.session_id
        cases = [(b"{", "JSON"), (b"[]", "object"), (b'{"code": 5}', "code"),
                 (b'{"code": null}', "code"), (b'{"code": ["1"]}', "code"), (b"{}", "code"),
                 (b'{"code": "1", "extra": true}', "extra"),
                 (b'{"code": "1", "timeout_s": "5"}', "timeout_s"),
                 (b'{"code": "1", "timeout_s": 0}', "timeout_s"),
                 (b'{"code": "1", "timeout_s": -3}', "timeout_s"),
                 (b'{"code": "1", "timeout_s": 1e12}', "timeout_s")]
        for body, mentions in cases:
            with self.subTest(body=body):
                self.assertError(API.post_json(path, raw=body), 400, "invalid_request", mentions)

    def test_execute_missing_body(self):
        reply = API.request("POST", "/v1/sessions/%s/executions" % self.session_id)
        self.assertError(reply, 400, "invalid_request", "code")

    def test_session_still_works(self):
        record = self.run_ok(self.session_id, "1 + 1")
        self.assertEqual(result_text(record), "2")

    def test_put_session_files_bad_bodies(self):
        path = "/v1/sessions/%s/files" % self.session_id
        for body in (b"{", b'{"file_ids": 3}', b'{"bogus": []}'):
            with self.subTest(body=body):
                self.assertError(API.post_json(path, raw=body), 400, "invalid_request")


# --- sessions --------------------------------------------------------------------------------


class TestSessions(ApiTestCase):
    @classmethod
    def setUpClass(cls):
        cls.csv_name = unique("input", "csv")
        cls.csv_data = b"k,v\na,1\nb,2\n"
        reply = API.upload_raw(cls.csv_name, cls.csv_data)
        assert reply.status == 201, reply
        cls.file = reply.json()
        reply = API.create_session(file_ids=[cls.file["id"]], metadata={"agent_id": "a1"})
        cls.create_reply = reply
        cls.session = reply.json() if reply.status == 201 else None

    @classmethod
    def tearDownClass(cls):
        if cls.session:
            API.delete("/v1/sessions/" + cls.session["id"])

    def setUp(self):
        self.assertEqual(self.create_reply.status, 201, self.create_reply)

    def test_created(self):
        s = self.session
        self.assertEqual(s["object"], "session")
        self.assertId(s["id"], "sess_")
        self.assertEqual(s["status"], "active")
        self.assertIsNone(s["end_reason"])
        self.assertEqual(s["pool"], "default")
        self.assertEqual(s["metadata"], {"agent_id": "a1"})
        self.assertTime(s["created_at"])
        self.assertTime(s["last_active_at"])
        self.assertTime(s["expires_at"])
        self.assertGreater(s["expires_at"], s["created_at"])
        self.assertEqual(s["execution_count"], 0)
        for key in ("memory_bytes", "execution_timeout_s", "max_execution_timeout_s",
                    "idle_timeout_s", "max_file_bytes"):
            self.assertIn(key, s["limits"])
            self.assertGreater(s["limits"][key], 0)

    def test_get(self):
        reply = API.get("/v1/sessions/" + self.session["id"])
        self.assertEqual(reply.status, 200)
        got = reply.json()
        self.assertEqual(got["id"], self.session["id"])
        self.assertEqual(got["status"], "active")
        self.assertEqual(got["metadata"], {"agent_id": "a1"})

    def test_input_file_in_session(self):
        reply = API.get("/v1/sessions/%s/files" % self.session["id"])
        self.assertEqual(reply.status, 200, reply)
        listing = reply.json()
        self.assertEqual(listing["object"], "list")
        entries = {f["path"]: f for f in listing["data"]}
        path = "/mnt/data/" + self.csv_name
        self.assertIn(path, entries)
        self.assertEqual(entries[path]["bytes"], len(self.csv_data))
        self.assertTime(entries[path]["modified_at"])
        record = self.run_ok(self.session["id"],
                             "open(%r, 'rb').read().decode()" % path)
        self.assertEqual(result_text(record), repr(self.csv_data.decode()))

    def test_list(self):
        reply = API.get("/v1/sessions")
        self.assertEqual(reply.status, 200)
        listing = reply.json()
        self.assertEqual(listing["object"], "list")
        self.assertIn(self.session["id"], [s["id"] for s in listing["data"]])
        active = API.get("/v1/sessions?status=active&limit=1000").json()["data"]
        self.assertIn(self.session["id"], [s["id"] for s in active])
        self.assertTrue(all(s["status"] == "active" for s in active))
        ended = API.get("/v1/sessions?status=ended&limit=1000").json()["data"]
        self.assertNotIn(self.session["id"], [s["id"] for s in ended])
        self.assertTrue(all(s["status"] == "ended" for s in ended))
        self.assertError(API.get("/v1/sessions?status=sleeping"), 400, "invalid_request")
        self.assertError(API.get("/v1/sessions?limit=0"), 400, "invalid_request")

    def test_unknown_file(self):
        for file_id in (MISSING_FILE_ID, "file_nope"):
            with self.subTest(file_id=file_id):
                reply = API.create_session(file_ids=[file_id])
                self.assertError(reply, 404, "not_found")

    def test_duplicate_file_names(self):
        other = API.upload_raw(self.csv_name, b"k,v\nc,3\n")
        self.assertEqual(other.status, 201)
        reply = API.create_session(file_ids=[self.file["id"], other.json()["id"]])
        self.assertError(reply, 400, "invalid_request", self.csv_name)

    def test_limits_above_pool(self):
        reply = API.create_session(limits={"memory_bytes": 10 ** 15})
        self.assertError(reply, 400, "invalid_request", "memory_bytes")
        reply = API.create_session(limits={"memory_bytes": 1 << 20})
        self.assertError(reply, 400, "invalid_request", "memory_bytes")
        reply = API.create_session(limits={"execution_timeout_s": 10 ** 9})
        self.assertError(reply, 400, "invalid_request", "execution_timeout_s")

    def test_unknown_limit(self):
        reply = API.create_session(limits={"gpus": 4})
        self.assertError(reply, 400, "invalid_request", "gpus")

    def test_custom_limits(self):
        s = self.new_session(limits={"memory_bytes": 512 << 20, "execution_timeout_s": 30})
        self.assertEqual(s["limits"]["memory_bytes"], 512 << 20)
        self.assertEqual(s["limits"]["execution_timeout_s"], 30)
        got = API.get("/v1/sessions/" + s["id"]).json()
        self.assertEqual(got["limits"]["memory_bytes"], 512 << 20)

    def test_put_files(self):
        s = self.new_session()
        # By id, as JSON.
        reply = API.post_json("/v1/sessions/%s/files" % s["id"], {"file_ids": [self.file["id"]]})
        self.assertEqual(reply.status, 200, reply)
        placed = reply.json()["data"]
        self.assertEqual(placed, [{"file_id": self.file["id"], "path": "/mnt/data/" + self.csv_name,
                                   "bytes": len(self.csv_data)}])
        # The same name again: a conflict, the first copy untouched.
        reply = API.post_json("/v1/sessions/%s/files" % s["id"], {"file_ids": [self.file["id"]]})
        self.assertError(reply, 409, "conflict")
        # Uploaded straight into the session.
        name = unique("direct", "txt")
        reply = API.upload_multipart(name, b"straight in\n", path="/v1/sessions/%s/files" % s["id"])
        self.assertEqual(reply.status, 201, reply)
        self.assertEqual(reply.json()["data"][0]["path"], "/mnt/data/" + name)
        paths = [f["path"] for f in API.get("/v1/sessions/%s/files" % s["id"]).json()["data"]]
        self.assertIn("/mnt/data/" + self.csv_name, paths)
        self.assertIn("/mnt/data/" + name, paths)
        record = self.run_ok(s["id"], "open('/mnt/data/%s').read()" % name)
        self.assertEqual(result_text(record), repr("straight in\n"))
        # Unknown file, unknown session.
        reply = API.post_json("/v1/sessions/%s/files" % s["id"], {"file_ids": [MISSING_FILE_ID]})
        self.assertError(reply, 404, "not_found")
        reply = API.post_json("/v1/sessions/%s/files" % MISSING_SESSION_ID,
                              {"file_ids": [self.file["id"]]})
        self.assertError(reply, 404, "not_found")

    def test_unknown_session(self):
        for session_id in (MISSING_SESSION_ID, "sess_bad", "file_" + "0" * 26):
            with self.subTest(session_id=session_id):
                self.assertError(API.get("/v1/sessions/" + session_id), 404, "not_found")
                self.assertError(API.delete("/v1/sessions/" + session_id), 404, "not_found")
                self.assertError(API.get("/v1/sessions/%s/files" % session_id), 404, "not_found")
                self.assertError(API.get("/v1/sessions/%s/executions" % session_id), 404,
                                 "not_found")
                self.assertError(API.execute(session_id, "1"), 404, "not_found")

    def test_end(self):
        s = self.new_session(metadata={"agent_id": "a2"})
        reply = API.delete("/v1/sessions/" + s["id"])
        self.assertEqual(reply.status, 200, reply)
        ended = reply.json()
        self.assertEqual(ended["status"], "ended")
        self.assertEqual(ended["end_reason"], "closed")
        self.assertTime(ended["ended_at"])
        self.assertIsNone(ended["expires_at"])
        self.assertEqual(ended["metadata"], {"agent_id": "a2"})
        reply = API.execute(s["id"], "1 + 1")
        self.assertError(reply, 410, "session_closed")
        reply = API.get("/v1/sessions/" + s["id"])
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.json()["status"], "ended")
        self.assertEqual(reply.json()["end_reason"], "closed")
        self.assertError(API.get("/v1/sessions/%s/files" % s["id"]), 410, "session_closed")
        reply = API.post_json("/v1/sessions/%s/files" % s["id"], {"file_ids": [self.file["id"]]})
        self.assertError(reply, 410, "session_closed")
        # Ending it again is harmless and changes nothing.
        again = API.delete("/v1/sessions/" + s["id"])
        self.assertEqual(again.status, 200)
        self.assertEqual(again.json()["end_reason"], "closed")
        self.assertEqual(again.json()["ended_at"], ended["ended_at"])
        ended_list = API.get("/v1/sessions?status=ended&limit=1000").json()["data"]
        self.assertIn(s["id"], [x["id"] for x in ended_list])


# --- executions ------------------------------------------------------------------------------


class TestExecutions(SharedSessionTestCase):
    def test_result(self):
        record = self.run_ok(self.session_id, "x = 21\nx * 2")
        self.assertEqual(record["object"], "execution")
        self.assertId(record["id"], "exec_")
        self.assertEqual(record["session_id"], self.session_id)
        self.assertEqual(record["outputs"][0]["output_type"], "execute_result")
        self.assertEqual(record["outputs"][0]["data"]["text/plain"], "42")
        self.assertIsNone(record["error"])
        self.assertEqual(record["code_sha256"], sha256(b"x = 21\nx * 2"))
        self.assertTime(record["started_at"])
        self.assertGreaterEqual(record["duration_ms"], 0)
        self.assertEqual(record["artifacts"], [])

    def test_state_is_kept(self):
        self.run_ok(self.session_id, "kept = [1, 2, 3]")
        record = self.run_ok(self.session_id, "kept.append(4)\nsum(kept)")
        self.assertEqual(result_text(record), "10")

    def test_stdout_and_stderr(self):
        record = self.run_ok(self.session_id,
                             "import sys\nprint('hello', 'world')\nprint('oops', file=sys.stderr)")
        self.assertEqual(record["stdout"], "hello world\n")
        self.assertEqual(record["stderr"], "oops\n")
        self.assertEqual(record["outputs"], [])

    def test_error(self):
        reply = API.execute(self.session_id, "def f():\n    raise ValueError('bad value')\nf()")
        self.assertEqual(reply.status, 200, reply)
        record = reply.json()
        self.assertEqual(record["status"], "error")
        self.assertEqual(record["error"]["ename"], "ValueError")
        self.assertIn("bad value", record["error"]["evalue"])
        self.assertTrue(record["error"]["traceback"])
        reply = API.execute(self.session_id, "1 +")
        self.assertEqual(reply.json()["status"], "error")
        self.assertEqual(reply.json()["error"]["ename"], "SyntaxError")
        # The session survives its errors.
        self.assertEqual(result_text(self.run_ok(self.session_id, "'alive'")), "'alive'")

    def test_get_and_list(self):
        record = self.run_ok(self.session_id, "'recorded'")
        reply = API.get("/v1/executions/" + record["id"])
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.json(), record)
        reply = API.get("/v1/sessions/%s/executions?limit=1000" % self.session_id)
        self.assertEqual(reply.status, 200)
        listing = reply.json()
        self.assertEqual(listing["object"], "list")
        by_id = {r["id"]: r for r in listing["data"]}
        self.assertIn(record["id"], by_id)
        self.assertEqual(by_id[record["id"]], record)
        self.assertTrue(all(r["session_id"] == self.session_id for r in listing["data"]))
        page = API.get("/v1/sessions/%s/executions?limit=1" % self.session_id).json()
        self.assertEqual(len(page["data"]), 1)
        self.assertError(API.get("/v1/sessions/%s/executions?limit=x" % self.session_id), 400,
                         "invalid_request")
        session = API.get("/v1/sessions/" + self.session_id).json()
        self.assertGreaterEqual(session["execution_count"], 1)

    def test_unknown_execution(self):
        for exec_id in (MISSING_EXECUTION_ID, "exec_x", "file_" + "0" * 26):
            with self.subTest(exec_id=exec_id):
                self.assertError(API.get("/v1/executions/" + exec_id), 404, "not_found")

    def test_stream(self):
        code = ("import time\nfor i in range(3):\n    print(f'tick {i}', flush=True)\n"
                "    time.sleep(0.4)\n'done'")
        conn = API.connection()
        try:
            conn.request("POST", "/v1/sessions/%s/executions" % self.session_id,
                         body=json.dumps({"code": code}),
                         headers=dict(API.auth_headers(), **{"Content-Type": "application/json",
                                                             "Accept": "text/event-stream"}))
            response = conn.getresponse()
            self.assertEqual(response.status, 200)
            self.assertTrue(response.getheader("Content-Type").startswith("text/event-stream"))
            events = list(sse_events(response))
        finally:
            conn.close()
        names = [e[0] for e in events]
        self.assertEqual(names[-1], "execution", names)
        self.assertEqual(names.count("execution"), 1)
        self.assertNotIn("error", names)
        stdout = "".join(e[1]["text"] for e in events if e[0] == "stdout")
        self.assertEqual(stdout, "tick 0\ntick 1\ntick 2\n")
        first_stdout = next(e[2] for e in events if e[0] == "stdout")
        # Streamed as printed, not all at the end (the cell sleeps 1.2 s after the first print).
        self.assertGreater(events[-1][2] - first_stdout, 0.6)
        results = [e[1] for e in events if e[0] == "result"]
        self.assertEqual(len(results), 1)
        self.assertEqual(results[0]["data"]["text/plain"], "'done'")
        record = events[-1][1]
        self.assertEqual(record["status"], "ok")
        self.assertEqual(record["stdout"], "tick 0\ntick 1\ntick 2\n")
        self.assertEqual(result_text(record), "'done'")
        stored = API.get("/v1/executions/" + record["id"])
        self.assertEqual(stored.status, 200)
        self.assertEqual(stored.json(), record)

    def test_stream_errors_keep_status(self):
        reply = API.post_json("/v1/sessions/%s/executions" % MISSING_SESSION_ID, {"code": "1"},
                              headers={"Accept": "text/event-stream"})
        self.assertError(reply, 404, "not_found")


class TestTimeoutAndBusy(SharedSessionTestCase):
    def test_timeout(self):
        started = time.monotonic()
        reply = API.execute(self.session_id, "import time\ntime.sleep(30)", timeout_s=1)
        elapsed = time.monotonic() - started
        self.assertEqual(reply.status, 200, reply)
        record = reply.json()
        self.assertEqual(record["status"], "timeout", record)
        self.assertLess(elapsed, 15, "a 1 s timeout took %.1f s" % elapsed)
        # time.sleep yields to KeyboardInterrupt: the interrupt must reach the cell and the
        # session live on. (Regression: the server's blocked SIGINT reached the sandbox's init
        # through the zygote, so every timeout became a kill.)
        self.assertEqual(record.get("timeout_action"), "interrupted", record)
        self.assertEqual(record["error"]["ename"], "KeyboardInterrupt", record)
        self.assertEqual(result_text(self.run_ok(self.session_id, "6 * 7")), "42")

    def test_busy(self):
        results = {}

        def slow():
            results["reply"] = API.execute(
                self.session_id,
                "import time\nopen('/mnt/data/busy-started', 'w').close()\ntime.sleep(4)\n'slept'")

        thread = threading.Thread(target=slow)
        thread.start()
        try:
            wait_for_session_file(self, API, self.session_id, "busy-started")
            reply = API.execute(self.session_id, "1 + 1")
            self.assertError(reply, 409, "session_busy")
            reply = API.post_json("/v1/sessions/%s/executions" % self.session_id, {"code": "1"},
                                  headers={"Accept": "text/event-stream"})
            self.assertError(reply, 409, "session_busy")
            # Reading the session while it works is fine.
            self.assertEqual(API.get("/v1/sessions/" + self.session_id).status, 200)
        finally:
            thread.join(60)
        first = results["reply"]
        self.assertEqual(first.status, 200, first)
        self.assertEqual(first.json()["status"], "ok")
        self.assertEqual(result_text(first.json()), "'slept'")
        self.assertEqual(result_text(self.run_ok(self.session_id, "2 + 2")), "4")


# --- end to end: a CSV in, a chart and a summary out -----------------------------------------


E2E_CODE = r"""
import pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
df = pd.read_csv("/mnt/data/%(name)s")
sums = df.groupby("region")["amount"].sum().sort_index()
for region, total in sums.items():
    print(f"{region},{total:.2f}")
fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
sums.plot.bar(ax=ax)
ax.set_ylabel("amount")
fig.savefig("/mnt/data/chart.png")
plt.close(fig)
sums.round(2).reset_index().to_csv("/mnt/data/summary.csv", index=False)
len(df)
"""


class TestEndToEnd(ApiTestCase):
    def test_csv_to_chart_and_summary(self):
        data, expected_cents = sales_csv(rows=3000)
        name = unique("sales", "csv")
        reply = API.upload_multipart(name, data)
        self.assertEqual(reply.status, 201, reply)
        upload = reply.json()
        self.assertEqual(upload["sha256"], sha256(data))
        session = self.new_session(file_ids=[upload["id"]], metadata={"agent_id": "e2e"})

        record = self.run_ok(session["id"], E2E_CODE % {"name": name})
        self.assertEqual(result_text(record), "3000")
        printed = {}
        for line in record["stdout"].splitlines():
            region, total = line.split(",")
            printed[region] = round(float(total) * 100)
        self.assertEqual(printed, expected_cents)

        artifacts = {a["filename"]: a for a in record["artifacts"]}
        self.assertEqual(set(artifacts), {"chart.png", "summary.csv"}, record["artifacts"])
        self.assertNotIn(name, artifacts, "an unchanged input is not an artifact")
        self.assertEqual(artifacts["chart.png"]["path"], "/mnt/data/chart.png")
        self.assertEqual(artifacts["chart.png"]["media_type"], "image/png")
        self.assertEqual(artifacts["summary.csv"]["media_type"], "text/csv")

        contents = {}
        for filename, artifact in artifacts.items():
            self.assertId(artifact["id"], "file_")
            self.assertRegex(artifact["sha256"], "^[0-9a-f]{64}$")
            reply = API.get("/v1/files/%s/content" % artifact["id"])
            self.assertEqual(reply.status, 200, reply)
            self.assertEqual(sha256(reply.body), artifact["sha256"], filename)
            self.assertEqual(len(reply.body), artifact["bytes"])
            self.assertEqual(reply.header("etag"), '"%s"' % artifact["sha256"])
            contents[filename] = reply.body
            meta = API.get("/v1/files/" + artifact["id"])
            self.assertEqual(meta.status, 200)
            meta = meta.json()
            self.assertEqual(meta["purpose"], "output")
            self.assertEqual(meta["session_id"], session["id"])
            self.assertEqual(meta["execution_id"], record["id"])
            self.assertEqual(meta["path"], "/mnt/data/" + filename)
            self.assertEqual(meta["sha256"], artifact["sha256"])
            self.assertTime(meta["created_at"])

        # The PNG decodes: signature, IHDR, CRCs, IDAT inflates to the size IHDR promises.
        chunks = png_chunks(contents["chart.png"])
        self.assertEqual(chunks[0][0], b"IHDR")
        self.assertEqual(chunks[-1][0], b"IEND")
        width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
        self.assertEqual((width, height), (600, 400))
        self.assertEqual(depth, 8)
        self.assertEqual(interlace, 0)
        channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
        pixels = zlib.decompress(b"".join(p for k, p in chunks if k == b"IDAT"))
        self.assertEqual(len(pixels), height * (1 + width * channels))
        self.assertTrue(all(pixels[row * (1 + width * channels)] <= 4 for row in range(height)),
                        "every scanline starts with a filter type 0-4")

        # The CSV parses with the right sums.
        rows = list(csv.DictReader(io.StringIO(contents["summary.csv"].decode())))
        self.assertEqual({r["region"]: round(float(r["amount"]) * 100) for r in rows},
                         expected_cents)

        # Both are listed as the session's outputs, and in /mnt/data.
        outputs = API.all_files("&purpose=output&session_id=" + session["id"])
        self.assertEqual({f["id"] for f in outputs}, {a["id"] for a in artifacts.values()})
        by_execution = API.all_files("&execution_id=" + record["id"])
        self.assertEqual({f["id"] for f in by_execution}, {a["id"] for a in artifacts.values()})
        paths = [f["path"] for f in API.get("/v1/sessions/%s/files" % session["id"]).json()["data"]]
        for path in ("/mnt/data/chart.png", "/mnt/data/summary.csv", "/mnt/data/" + name):
            self.assertIn(path, paths)

        # A later cell that changes one file makes a new artifact; the old one keeps its bytes.
        record2 = self.run_ok(session["id"],
                              "with open('/mnt/data/summary.csv', 'a') as f:\n"
                              "    f.write('total,0\\n')")
        self.assertEqual([a["filename"] for a in record2["artifacts"]], ["summary.csv"])
        new = record2["artifacts"][0]
        self.assertNotEqual(new["id"], artifacts["summary.csv"]["id"])
        self.assertEqual(API.get("/v1/files/%s/content" % new["id"]).body,
                         contents["summary.csv"] + b"total,0\n")
        old = API.get("/v1/files/%s/content" % artifacts["summary.csv"]["id"])
        self.assertEqual(old.body, contents["summary.csv"])
        # A cell that writes nothing has no artifacts.
        self.assertEqual(self.run_ok(session["id"], "1")["artifacts"], [])


# --- links out of /mnt/data ------------------------------------------------------------------


class TestSymlinkAttack(ApiTestCase):
    def test_links_are_not_artifacts(self):
        marker = "HOST-SECRET-" + os.urandom(8).hex()
        host_dir = os.path.join(WORK_DIR, "decoy")
        os.makedirs(host_dir, exist_ok=True)
        os.chmod(WORK_DIR, 0o755)
        os.chmod(host_dir, 0o755)
        host_secret = os.path.join(host_dir, "secret.txt")
        with open(host_secret, "w") as f:
            f.write(marker + "\n")
        os.chmod(host_secret, 0o644)
        victim = os.path.join(host_dir, "victim.txt")
        with open(victim, "w") as f:
            f.write("original\n")
        with open("/etc/passwd", "rb") as f:
            host_passwd = f.read()

        # Another session holds a secret file; its host path is under the runtime dir.
        other_marker = "OTHER-SESSION-" + os.urandom(8).hex()
        other = self.new_session()
        other_record = self.run_ok(other["id"],
                                   "open('/mnt/data/secret.txt', 'w').write(%r)" % other_marker)
        # Its own output file rightly holds its marker; no other file may.
        self.assertEqual([a["filename"] for a in other_record["artifacts"]], ["secret.txt"])
        others_own = other_record["artifacts"][0]["id"]
        other_path = os.path.join(RUNTIME_DIR, "sessions", other["id"], "data", "secret.txt")

        attacker = self.new_session()
        code = r"""
import os
made = []
def attempt(label, fn):
    try:
        fn()
        made.append(label)
    except OSError as e:
        print(label, "refused:", e.errno)
attempt("symlink", lambda: os.symlink("/etc/passwd", "/mnt/data/passwd_link"))
attempt("relative", lambda: os.symlink("../../../../../../etc/passwd", "/mnt/data/rel_link.txt"))
attempt("hardlink", lambda: os.link("/etc/passwd", "/mnt/data/passwd_hard"))
attempt("other", lambda: os.symlink(%(other)r, "/mnt/data/other_link.txt"))
attempt("hostfile", lambda: os.symlink(%(secret)r, "/mnt/data/host_link.txt"))
attempt("dirlink", lambda: os.symlink(%(dir)r, "/mnt/data/dir_link"))
attempt("etclink", lambda: os.symlink("/etc", "/mnt/data/etc_link"))
attempt("victim", lambda: os.symlink(%(victim)r, "/mnt/data/victim.txt"))
os.makedirs("/mnt/data/sub", exist_ok=True)
attempt("nested", lambda: os.symlink("/etc/passwd", "/mnt/data/sub/nested_link"))
open("/mnt/data/plain.txt", "w").write("plain\n")
print("made:", ",".join(made))
""" % {"other": other_path, "secret": host_secret, "dir": host_dir, "victim": victim}
        record = self.run_ok(attacker["id"], code)
        made = record["stdout"].rsplit("made:", 1)[-1].strip().split(",")
        for label in ("symlink", "other", "hostfile", "dirlink", "victim"):
            self.assertIn(label, made, "the cell could not make its links, so this test proves "
                          "nothing: %s" % record["stdout"])
        link_names = {"passwd_link", "rel_link.txt", "passwd_hard", "other_link.txt",
                      "host_link.txt", "dir_link", "etc_link", "victim.txt", "nested_link",
                      "secret.txt", "passwd"}

        def leaked(file_id, data):
            if file_id != others_own and other_marker.encode() in data:
                return True
            return (marker.encode() in data or
                    (host_passwd and host_passwd in data) or b"root:x:0:0" in data)

        artifact_names = {a["filename"] for a in record["artifacts"]}
        self.assertEqual(artifact_names & link_names, set(),
                         "links became artifacts: %r\ncell stdout: %s" %
                         (record["artifacts"], record["stdout"]))
        self.assertIn("plain.txt", artifact_names, "the ordinary file is still an artifact")
        for entry in record["artifacts"] + record["files"]:
            self.assertFalse(any(part in link_names for part in entry["path"].split("/")), entry)

        listing = API.get("/v1/sessions/%s/files" % attacker["id"])
        self.assertEqual(listing.status, 200, listing)
        for entry in listing.json()["data"]:
            parts = entry["path"].split("/")
            self.assertFalse(any(part in link_names for part in parts), entry)

        # No stored file anywhere carries the host's (or the other session's) secrets.
        for f in API.all_files():
            content = API.get("/v1/files/%s/content" % f["id"])
            self.assertEqual(content.status, 200, (f, content))
            self.assertFalse(leaked(f["id"], content.body), "file %s (%s) leaks host data" %
                             (f["id"], f["filename"]))

        # Placing a file whose name is a link in /mnt/data must not write through the link.
        upload = API.upload_raw("victim.txt", b"overwritten through a link\n")
        self.assertEqual(upload.status, 201, upload)
        reply = API.post_json("/v1/sessions/%s/files" % attacker["id"],
                              {"file_ids": [upload.json()["id"]]})
        self.assertIn(reply.status, (200, 409), reply)
        with open(victim) as f:
            self.assertEqual(f.read(), "original\n", "the upload was written through a symlink")
        with open(host_secret) as f:
            self.assertEqual(f.read(), marker + "\n")
        self.assertHealthy()


# --- restart: kill -9, then the same data dir ------------------------------------------------


class TestLineage(ApiTestCase):
    """A two-step chain: an output of one session becomes the input of another."""

    def test_two_step_chain(self):
        reply = API.upload_raw(unique("raw", "csv"), b"n\n1\n2\n3\n")
        self.assertEqual(reply.status, 201, reply)
        raw = reply.json()
        first = self.new_session(file_ids=[raw["id"]], metadata={"agent_id": "agent-1",
                                                                  "thread_id": "t-1"})
        # A file the first cell writes is present for the second cell of the same session.
        self.run_ok(first["id"], "open('/mnt/data/note.txt', 'w').write('x')")
        step1 = self.run_ok(first["id"], "import pandas as pd\n"
                            "df = pd.read_csv('%s')\n"
                            "(df * 10).to_csv('/mnt/data/mid.csv', index=False)" % raw["filename"])
        mid = [a for a in step1["artifacts"] if a["filename"] == "mid.csv"][0]
        second = self.new_session(file_ids=[mid["id"]], metadata={"run_id": "r-2"})
        step2 = self.run_ok(second["id"], "import pandas as pd\n"
                            "pd.read_csv('mid.csv').sum().to_csv('/mnt/data/out.csv')")
        out = [a for a in step2["artifacts"] if a["filename"] == "out.csv"][0]

        reply = API.get("/v1/files/%s/lineage" % out["id"])
        self.assertEqual(reply.status, 200, reply)
        lineage = reply.json()
        self.assertEqual(lineage["file"]["id"], out["id"])
        produced = lineage["produced_by"]
        self.assertEqual(produced["execution"]["id"], step2["id"])
        self.assertEqual(produced["execution"]["code_sha256"], step2["code_sha256"])
        self.assertEqual(produced["session"]["id"], second["id"])
        self.assertEqual(produced["session"]["run_id"], "r-2")
        self.assertEqual([i["file_id"] for i in produced["inputs"]], [mid["id"]])
        self.assertEqual(produced["inputs"][0]["sha256"], mid["sha256"])
        # Recursively: mid.csv came from step 1, whose inputs were the raw upload and note.txt.
        earlier = produced["inputs"][0]["produced_by"]
        self.assertEqual(earlier["execution"]["id"], step1["id"])
        self.assertEqual(earlier["session"]["agent_id"], "agent-1")
        self.assertEqual(earlier["session"]["thread_id"], "t-1")
        inputs = {i["filename"]: i for i in earlier["inputs"]}
        self.assertEqual(set(inputs), {raw["filename"], "note.txt"})
        self.assertEqual(inputs[raw["filename"]]["sha256"], raw["sha256"])
        self.assertEqual(inputs[raw["filename"]]["via"], "placed")
        self.assertNotIn("produced_by", inputs[raw["filename"]])
        self.assertEqual(inputs["note.txt"]["via"], "written_earlier_in_session")

        # Forward: the raw upload was used by the first session's two cells.
        reply = API.get("/v1/files/%s/lineage" % raw["id"])
        self.assertEqual(reply.status, 200, reply)
        forward = reply.json()
        self.assertIsNone(forward["produced_by"])
        self.assertEqual([u["session_id"] for u in forward["used_by"]], [first["id"]])
        self.assertEqual([e["id"] for e in forward["used_by"][0]["executions"]][-1], step1["id"])
        self.assertError(API.get("/v1/files/file_00000000000000000000000000/lineage"), 404,
                         "not_found")


class TestConfigAndShutdown(ApiTestCase):
    """The configuration file is checked before anything starts; SIGTERM lets requests in
    flight finish within the grace period, then interrupts their cells and records why."""

    def test_invalid_configuration_is_refused_by_key(self):
        path = os.path.join(WORK_DIR, "bad.toml")
        with open(path, "w") as f:
            f.write("[server]\nlisten = \"127.0.0.1:0\"\n[[pools]]\nname = \"default\"\n"
                    "[pools.limits]\nmemroy = \"1g\"\n")
        proc = subprocess.run([PYCELL, "serve", "--config", path, "--data-dir",
                               os.path.join(WORK_DIR, "bad-config-data")],
                              capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 1, proc)
        self.assertIn(b"pools[0].limits.memroy", proc.stderr)
        self.assertIn(b"unknown key", proc.stderr)

    def test_sigterm_interrupts_a_running_cell_and_records_it(self):
        data_dir = os.path.join(WORK_DIR, "shutdown-data")
        os.makedirs(data_dir)
        config = os.path.join(WORK_DIR, "shutdown.toml")
        with open(config, "w") as f:
            f.write("[server]\nshutdown_grace_s = 1\n")
        server = Server(data_dir, RESTART_RUNTIME_DIR, os.path.join(WORK_DIR, "shutdown.log"))
        try:
            client = server.start(extra_args=("--config", config))
            reply = client.create_session()
            self.assertEqual(reply.status, 201, reply)
            session_id = reply.json()["id"]
            result = {}

            def slow():
                result["reply"] = client.execute(
                    session_id, "import time\nopen('/mnt/data/slow-started', 'w').close()\n"
                    "time.sleep(60)", timeout_s=90, timeout=120)

            thread = threading.Thread(target=slow, daemon=True)
            thread.start()
            wait_for_session_file(self, client, session_id, "slow-started")
            started = time.monotonic()
            rc = server.stop(timeout=60)
            self.assertEqual(rc, 0, server.log_tail())
            self.assertLess(time.monotonic() - started, 20)
            thread.join(30)
            reply = result.get("reply")
            self.assertIsNotNone(reply, "the running cell got no answer")
            self.assertEqual(reply.status, 200, reply)
            record = reply.json()
            self.assertNotEqual(record["status"], "ok", record)
            self.assertEqual(record.get("interrupted_by"), "server_shutdown", record)

            # The records say so after a restart too.
            client = server.start()
            session = client.get("/v1/sessions/" + session_id).json()
            self.assertEqual(session["status"], "ended", session)
            self.assertEqual(session["end_reason"], "shutdown", session)
            stored = client.get("/v1/executions/" + record["id"]).json()
            self.assertEqual(stored.get("interrupted_by"), "server_shutdown", stored)
            self.assertEqual(server.stop(timeout=60), 0)
        except BaseException:
            print(server.log_tail(60), file=sys.stderr)
            raise
        finally:
            if server.proc and server.proc.poll() is None:
                server.kill()


class TestRestart(ApiTestCase):
    """A server of its own (separate data dir) is killed with SIGKILL while a slow cell runs and
    a 50 MB upload is half sent, then restarted on the same data dir."""

    def test_kill_and_restart(self):
        data_dir = os.path.join(WORK_DIR, "restart-data")
        os.makedirs(data_dir)
        server = Server(data_dir, RESTART_RUNTIME_DIR, os.path.join(WORK_DIR, "restart.log"))
        try:
            self.kill_and_restart(server, data_dir)
        except BaseException:
            print(server.log_tail(60), file=sys.stderr)
            raise
        finally:
            if server.proc and server.proc.poll() is None:
                server.kill()

    def kill_and_restart(self, server, data_dir):
        client = server.start()
        data, _ = sales_csv(rows=2000, seed=99)
        reply = client.upload_multipart("kept.csv", data)
        self.assertEqual(reply.status, 201, reply)
        kept = reply.json()
        reply = client.create_session(file_ids=[kept["id"]])
        self.assertEqual(reply.status, 201, reply)
        session_id = reply.json()["id"]

        # A slow cell in flight.
        def slow():
            try:
                client.execute(session_id,
                               "import time\nopen('/mnt/data/started', 'w').close()\n"
                               "time.sleep(60)", timeout_s=90, timeout=120)
            except (OSError, http.client.HTTPException):
                pass  # The server died under it.

        slow_thread = threading.Thread(target=slow, daemon=True)
        slow_thread.start()

        # A 50 MB raw upload in flight, sent slowly.
        stop = threading.Event()
        sent = [0]

        def upload():
            total = 50 << 20
            try:
                sock = socket.create_connection((client.host, client.port), 30)
                sock.sendall(("POST /v1/files?filename=big.csv HTTP/1.1\r\nHost: %s:%d\r\n%s"
                              "Content-Type: text/csv\r\nContent-Length: %d\r\n\r\n" %
                              (client.host, client.port, client.auth_line().decode(),
                               total)).encode())
                line = b"region,month,amount\n" * 13107  # ~256 KiB
                while sent[0] < total and not stop.is_set():
                    piece = line[:min(len(line), total - sent[0])]
                    sock.sendall(piece)
                    sent[0] += len(piece)
                    time.sleep(0.05)
                stop.wait(60)
                sock.close()
            except OSError:
                pass

        upload_thread = threading.Thread(target=upload, daemon=True)
        upload_thread.start()

        tmp_dir = os.path.join(data_dir, "files", "tmp")

        def tmp_bytes():
            total = 0
            for entry in os.scandir(tmp_dir):
                try:
                    total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    pass
            return total

        deadline = time.monotonic() + 30
        while tmp_bytes() < (4 << 20) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreaterEqual(tmp_bytes(), 4 << 20,
                                "the upload should be on its way into files/tmp before the kill")
        self.assertLess(sent[0], 50 << 20, "the upload finished before the kill")
        # The slow cell is running: the session is busy.
        wait_for_session_file(self, client, session_id, "started")
        busy = client.execute(session_id, "1")
        self.assertError(busy, 409, "session_busy")

        family = descendants(server.proc.pid)
        self.assertTrue(family, "the server runs its sessions in child processes")
        server.kill()
        stop.set()

        # Nothing of the killed run outlives it, even before a restart: the zygote dies with the
        # server, and each session's init with the server's lifeline pipe (the sleeping cell
        # would otherwise go on for a minute, and a `while True` cell for ever, owned by no one).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in family):
            time.sleep(0.1)
        survivors = [describe(p) for p in family if alive(p)]
        self.assertEqual(survivors, [], "processes of the killed server still run")

        client = server.start()
        # The earlier file is intact.
        reply = client.get("/v1/files/" + kept["id"])
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.json()["sha256"], sha256(data))
        content = client.get("/v1/files/%s/content" % kept["id"])
        self.assertEqual(content.status, 200)
        self.assertEqual(sha256(content.body), sha256(data))
        # The session was ended by the restart.
        reply = client.get("/v1/sessions/" + session_id)
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.json()["status"], "ended")
        self.assertEqual(reply.json()["end_reason"], "server_restart")
        self.assertError(client.execute(session_id, "1"), 410, "session_killed")
        # Nothing of the cut upload.
        names = [f["filename"] for f in client.all_files()]
        self.assertNotIn("big.csv", names)
        self.assertEqual(names, ["kept.csv"])
        self.assertEqual(os.listdir(tmp_dir), [])
        # The restarted server works.
        reply = client.create_session(file_ids=[kept["id"]])
        self.assertEqual(reply.status, 201, reply)
        record = client.execute(reply.json()["id"],
                                "import hashlib\nhashlib.sha256(open('/mnt/data/kept.csv', 'rb')"
                                ".read()).hexdigest()")
        self.assertEqual(record.status, 200, record)
        self.assertEqual(result_text(record.json()), repr(sha256(data)))
        self.assertEqual(client.delete("/v1/sessions/" + reply.json()["id"]).status, 200)

        rc = server.stop(60)
        self.assertEqual(rc, 0, "the restarted server exited %s after SIGTERM" % rc)
        self.assertEqual(server.last_stdout_line(), STOPPED_LINE)


# --- main ------------------------------------------------------------------------------------


def main():
    global PYCELL
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()

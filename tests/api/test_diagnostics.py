#!/usr/bin/python3
"""Diagnostic settings (issue 6, "Diagnostic settings"), black-box against a real server.

Usage:
  test_diagnostics.py --pycell PATH [unittest arguments, e.g. -v or -k Webhook]

One server runs for the module with a configuration file of five settings:
  - "everything":  a file sink for all five categories, max_bytes 4 KiB so that it rotates many
                   times during the workload (keep 1000: nothing may be lost);
  - "audit-out":   stdout, audit only (the server's stdout is read by tests/pycell_server.py);
  - "alarms":      syslog, security only, to a Unix datagram socket this module binds;
  - "hook":        a webhook (executions, sessions, requests) to a small HTTP receiver started
                   here, with a token in its query string that /v1/config must not show;
  - "dead-hook":   a webhook to a port nobody listens on, with a queue of 3 and one retry, so that
                   failures and drops are counted.
A known workload runs with the bootstrap admin key (an upload, a session, cells that succeed,
raise and time out, a wrong key, a user key refused a permission, the session's end); then each
sink is read and checked against the server's own records (GET /v1/audit, the executions, the
X-Request-Id headers the workload saw), and `pycell diagnostic-settings list` against the counts.

Only the standard library.
"""

import glob
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)

PYCELL = None  # The binary, from --pycell.
WORK_DIR = None
SERVER = None
ADMIN = None
RUN = None  # The Workload.
RECEIVER = None  # The webhook receiver.
SYSLOG = None  # The syslog socket.

RUNTIME_DIR = "/run/pycell-diagnostics-tests"
WRONG_KEY = "pyc_%s_%s" % ("0" * 26, "0" * 32)
HOOK_TOKEN = "s3cr3t-token-value"
CATEGORIES = ("audit", "executions", "sessions", "requests", "security")
SYSLOG_LINE_RE = re.compile(rb"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ([^\[]+)\[(\d+)\]: (.*)$",
                            re.S)


class Receiver:
    """An HTTP server on loopback that keeps every POSTed body (each a JSON array of events)."""

    def __init__(self):
        self.batches = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.batches.append((self.path, self.headers.get("Content-Type"), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self):
        with self.lock:
            batches = list(self.batches)
        out = []
        for _, _, body in batches:
            out.extend(json.loads(body))
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SyslogSocket:
    """A Unix datagram socket standing in for /dev/log; a thread keeps every datagram."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.datagrams = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.stopping:
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.datagrams.append(data)

    def messages(self):
        with self.lock:
            return list(self.datagrams)

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(diag_dir, hook_port, dead_port, syslog_path):
    return """
[[diagnostic_settings]]
name = "everything"
categories = ["audit", "executions", "sessions", "requests", "security"]
sink = "file"
path = "{diag}/all.jsonl"
max_bytes = "4k"
keep = 1000

[[diagnostic_settings]]
name = "audit-out"
categories = ["audit"]
sink = "stdout"

[[diagnostic_settings]]
name = "alarms"
categories = ["security"]
sink = "syslog"
facility = "local3"
ident = "pycell-test"
socket = "{syslog}"

[[diagnostic_settings]]
name = "hook"
categories = ["executions", "sessions", "requests"]
sink = "webhook"
url = "http://127.0.0.1:{hook}/ingest?token={token}"
batch_max = 5
flush_interval_ms = 100

[[diagnostic_settings]]
name = "dead-hook"
categories = ["requests"]
sink = "webhook"
url = "http://127.0.0.1:{dead}/never"
queue_max = 3
max_retries = 1
backoff_ms = 10
timeout_ms = 500
""".format(diag=diag_dir, hook=hook_port, dead=dead_port, syslog=syslog_path, token=HOOK_TOKEN)


def read_jsonl(paths):
    events = []
    for path in paths:
        with open(path, "rb") as f:
            for line in f:
                events.append(json.loads(line))
    return events


def file_sink_paths(diag_dir):
    """all.jsonl and its rotated files, oldest first (all.jsonl.N … all.jsonl.1, all.jsonl)."""
    rotated = glob.glob(os.path.join(diag_dir, "all.jsonl.*"))
    rotated.sort(key=lambda p: -int(p.rsplit(".", 1)[1]))
    return rotated + [os.path.join(diag_dir, "all.jsonl")]


class Workload:
    """Runs the known workload and keeps what the tests compare the sinks with."""

    def __init__(self):
        self.request_ids = []
        upload = ADMIN.upload_raw("diag.csv", b"a,b\n1,2\n")
        assert upload.status == 201, upload
        self.request_ids.append(upload.header("x-request-id"))
        self.file_id = upload.json()["id"]
        created = ADMIN.create_session(file_ids=[self.file_id])
        assert created.status == 201, created
        self.session_id = created.json()["id"]
        self.session_request_id = created.header("x-request-id")
        self.executions = []
        for code, timeout in (("x = 40 + 2\nprint(x)", None), ("raise ValueError('boom')", None),
                              ("import time\ntime.sleep(30)", 1)):
            reply = ADMIN.execute(self.session_id, code, timeout_s=timeout)
            assert reply.status == 200, reply
            self.executions.append((reply.json()["id"], reply.header("x-request-id"),
                                    reply.json()["status"]))
        self.wrong_key = ADMIN.with_key(WRONG_KEY).get("/v1/sessions")
        key = ADMIN.post_json("/v1/keys", {"principal": "diag-user", "role": "user"})
        assert key.status == 201, key
        self.user = ADMIN.with_key(key.json()["key"])
        self.user_refused = self.user.get("/v1/diagnostic-settings")
        ended = ADMIN.delete("/v1/sessions/" + self.session_id)
        assert ended.status == 200, ended
        self.end_request_id = ended.header("x-request-id")
        self.config = ADMIN.get("/v1/config")
        # Everything the workload made is on record; wait until the sinks have it too.
        self.audit = self._audit()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self._delivered():
            time.sleep(0.1)
        self.settings = ADMIN.get("/v1/diagnostic-settings")

    def _audit(self):
        events, after = [], 0
        while True:
            reply = ADMIN.get("/v1/audit?limit=1000&after=%d" % after)
            assert reply.status == 200, reply
            page = reply.json()["data"]
            events.extend(page)
            if len(page) < 1000:
                return events
            after = page[-1]["seq"]

    def _delivered(self):
        try:
            audit_lines = [e for e in read_jsonl(file_sink_paths(DIAG_DIR))
                           if e.get("category") == "audit"]
        except (OSError, ValueError):
            return False
        hook_sessions = [e for e in RECEIVER.events() if e.get("category") == "sessions"]
        alarms = SYSLOG.messages()
        return (len(audit_lines) >= len(self.audit) and len(hook_sessions) >= 2 and
                len(alarms) >= 2)


DIAG_DIR = None


def setUpModule():
    global SERVER, ADMIN, WORK_DIR, RUN, RECEIVER, SYSLOG, DIAG_DIR
    WORK_DIR = tempfile.mkdtemp(prefix="pycell-diagnostics-tests-")
    data_dir = os.path.join(WORK_DIR, "data")
    os.makedirs(data_dir)
    DIAG_DIR = os.path.join(WORK_DIR, "diag")  # Made by the server (missing parents are).
    RECEIVER = Receiver()
    SYSLOG = SyslogSocket(os.path.join(WORK_DIR, "syslog.sock"))
    config_path = os.path.join(WORK_DIR, "pycell.toml")
    with open(config_path, "w") as f:
        f.write(config_text(DIAG_DIR, RECEIVER.port, free_port(), SYSLOG.path))
    SERVER = pycell_server.ServeProcess(PYCELL, data_dir, RUNTIME_DIR,
                                        os.path.join(WORK_DIR, "server.log"))
    def setup():
        global ADMIN
        ADMIN = SERVER.client()
        return Workload()

    RUN = pycell_server.start_for_module(SERVER, setup, extra_args=("--config", config_path))


def tearDownModule():
    try:
        pycell_server.stop_for_module(SERVER, WORK_DIR)
    finally:
        if RECEIVER:
            RECEIVER.close()
        if SYSLOG:
            SYSLOG.close()


class TestFileSink(unittest.TestCase):
    def setUp(self):
        self.paths = file_sink_paths(DIAG_DIR)
        self.events = read_jsonl(self.paths)

    def test_rotated_many_times_and_kept_every_audit_event(self):
        self.assertGreater(len(self.paths), 3, "4 KiB files should have rotated: %s" % self.paths)
        for path in self.paths[:-1]:
            self.assertLessEqual(os.path.getsize(path), 4096 + 64 * 1024,
                                 "%s grew far past max_bytes" % path)
        audit = [e for e in self.events if e["category"] == "audit"]
        # The workload's audit events, each once, in order, as the API shows them.
        self.assertEqual([e["seq"] for e in audit[:len(RUN.audit)]],
                         [e["seq"] for e in RUN.audit])
        by_seq = {e["seq"]: e for e in audit}
        self.assertEqual(len(by_seq), len(audit), "an audit event was written twice")
        for event in RUN.audit:
            self.assertEqual(by_seq[event["seq"]]["hash"], event["hash"])
            self.assertEqual(by_seq[event["seq"]]["action"], event["action"])

    def test_every_category_arrives(self):
        seen = {e["category"] for e in self.events}
        self.assertEqual(seen, set(CATEGORIES))
        for event in self.events:
            self.assertIn("time", event)

    def test_executions_carry_their_record_and_request_id(self):
        executions = {e["id"]: e for e in self.events if e["category"] == "executions"}
        for execution_id, request_id, status in RUN.executions:
            self.assertIn(execution_id, executions)
            event = executions[execution_id]
            self.assertEqual(event["status"], status)
            self.assertEqual(event["request_id"], request_id)
            self.assertEqual(event["session_id"], RUN.session_id)
            self.assertIn("code", event)
            self.assertTrue(event["principal"])

    def test_request_id_links_access_log_audit_and_header(self):
        request_id = RUN.executions[0][1]
        self.assertTrue(request_id and request_id.startswith("req_"), request_id)
        requests = [e for e in self.events
                    if e["category"] == "requests" and e["request_id"] == request_id]
        self.assertEqual(len(requests), 1, requests)
        self.assertEqual(requests[0]["route"], "/v1/sessions/{id}/executions")
        self.assertEqual(requests[0]["status"], 200)
        audit = [e for e in RUN.audit if e["request_id"] == request_id]
        self.assertEqual([e["action"] for e in audit], ["execution.run"])

    def test_sessions_lifecycle(self):
        sessions = [e for e in self.events
                    if e["category"] == "sessions" and e["session_id"] == RUN.session_id]
        self.assertEqual([e["event"] for e in sessions], ["session.created", "session.ended"])
        self.assertEqual(sessions[0]["request_id"], RUN.session_request_id)
        self.assertEqual(sessions[0]["file_ids"], [RUN.file_id])
        self.assertEqual(sessions[1]["reason"], "closed")
        self.assertEqual(sessions[1]["request_id"], RUN.end_request_id)

    def test_security_has_denials_and_the_sandbox_timeout(self):
        security = [e for e in self.events if e["category"] == "security"]
        denied = [e for e in security if e["event"] == "auth.denied"]
        reasons = {json.dumps(e.get("detail"), sort_keys=True) for e in denied}
        self.assertGreaterEqual(len(denied), 2, security)
        self.assertEqual({e["outcome"] for e in denied}, {"denied"}, reasons)
        timeout_id = RUN.executions[2][0]
        sandbox = [e for e in security if e.get("execution_id") == timeout_id]
        self.assertEqual(len(sandbox), 1, security)
        self.assertTrue(sandbox[0]["event"].startswith("sandbox.timeout_"), sandbox)


class TestStdoutSink(unittest.TestCase):
    def test_audit_only_one_json_line_each(self):
        lines = [line for line in SERVER.stdout_lines if line.startswith("{")]
        events = [json.loads(line) for line in lines]
        self.assertEqual({e["category"] for e in events}, {"audit"})
        self.assertEqual([e["seq"] for e in events][:len(RUN.audit)],
                         [e["seq"] for e in RUN.audit])


class TestSyslogSink(unittest.TestCase):
    def test_security_only_in_syslog_format(self):
        messages = SYSLOG.messages()
        self.assertGreaterEqual(len(messages), 2)
        for message in messages:
            match = SYSLOG_LINE_RE.match(message)
            self.assertIsNotNone(match, message)
            self.assertEqual(int(match.group(1)), 19 * 8 + 6)  # local3.info
            self.assertEqual(match.group(2), b"pycell-test")
            self.assertEqual(int(match.group(3)), SERVER.proc.pid)
            self.assertEqual(json.loads(match.group(4))["category"], "security")


class TestWebhookSink(unittest.TestCase):
    def test_batches_of_the_listed_categories(self):
        with RECEIVER.lock:
            batches = list(RECEIVER.batches)
        self.assertGreater(len(batches), 1)
        for path, content_type, body in batches:
            self.assertEqual(path, "/ingest?token=" + HOOK_TOKEN)
            self.assertTrue(content_type.startswith("application/json"), content_type)
            batch = json.loads(body)
            self.assertIsInstance(batch, list)
            self.assertLessEqual(len(batch), 5)
        events = RECEIVER.events()
        self.assertEqual({e["category"] for e in events}, {"executions", "sessions", "requests"})
        ids = {e.get("id") for e in events if e["category"] == "executions"}
        self.assertEqual(ids, {execution_id for execution_id, _, _ in RUN.executions})

    def test_token_not_shown_in_the_live_configuration(self):
        self.assertEqual(RUN.config.status, 200, RUN.config)
        body = RUN.config.body.decode()
        self.assertNotIn(HOOK_TOKEN, body)
        hooks = [d for d in RUN.config.json()["diagnostic_settings"] if d["name"] == "hook"]
        self.assertEqual(hooks[0]["url"], "http://127.0.0.1:%d/ingest?redacted" % RECEIVER.port)


class TestSettingsList(pycell_server.HttpAssertions, unittest.TestCase):
    def states(self):
        self.assertEqual(RUN.settings.status, 200, RUN.settings)
        return {d["name"]: d for d in RUN.settings.json()["data"]}

    def test_counts(self):
        states = self.states()
        self.assertEqual(list(states), ["everything", "audit-out", "alarms", "hook", "dead-hook"])
        for name in ("everything", "audit-out", "alarms", "hook"):
            self.assertGreater(states[name]["sent"], 0, states[name])
            self.assertEqual(states[name]["failed"], 0, states[name])
            self.assertEqual(states[name]["dropped"], 0, states[name])
        dead = states["dead-hook"]
        self.assertEqual(dead["sent"], 0, dead)
        self.assertGreater(dead["dropped"], 0, dead)
        self.assertTrue(dead["last_error"], dead)

    def test_user_may_not_list(self):
        self.assertError(RUN.user_refused, 403, "permission_denied")

    def test_cli_list(self):
        env = dict(os.environ, PYCELL_URL=SERVER.url(), PYCELL_KEY=SERVER.admin_key)
        text = subprocess.run([PYCELL, "diagnostic-settings", "list"], env=env,
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(text.returncode, 0, text.stderr)
        for name in ("everything", "audit-out", "alarms", "hook", "dead-hook"):
            self.assertIn(name, text.stdout)
        self.assertIn("DROPPED", text.stdout)
        listed = subprocess.run([PYCELL, "diagnostic-settings", "list", "--json"], env=env,
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        names = [d["name"] for d in json.loads(listed.stdout)["data"]]
        self.assertEqual(names, ["everything", "audit-out", "alarms", "hook", "dead-hook"])


class TestBadSettings(unittest.TestCase):
    def check(self, text):
        path = os.path.join(WORK_DIR, "bad.toml")
        with open(path, "w") as f:
            f.write(text)
        return subprocess.run([PYCELL, "config", "check", path], capture_output=True, text=True,
                              timeout=60)

    def test_unknown_category_names_the_key(self):
        result = self.check('[[diagnostic_settings]]\nname = "x"\ncategories = ["audits"]\n'
                            'sink = "stdout"\n')
        self.assertEqual(result.returncode, 1)
        self.assertIn("diagnostic_settings[0].categories", result.stderr)

    def test_key_of_another_sink(self):
        result = self.check('[[diagnostic_settings]]\nname = "x"\ncategories = ["audit"]\n'
                            'sink = "stdout"\nurl = "http://127.0.0.1:1/"\n')
        self.assertEqual(result.returncode, 1)
        self.assertIn("url", result.stderr)

    def test_unwritable_file_path_refuses_to_start(self):
        config = os.path.join(WORK_DIR, "unwritable.toml")
        with open(config, "w") as f:
            f.write('[[diagnostic_settings]]\nname = "x"\ncategories = ["audit"]\n'
                    'sink = "file"\npath = "/proc/version/nope.jsonl"\n')
        data = tempfile.mkdtemp(dir=WORK_DIR)
        result = subprocess.run([PYCELL, "serve", "--config", config, "--listen", "127.0.0.1:0",
                                 "--data-dir", data, "--runtime-dir", RUNTIME_DIR + "-bad"],
                                capture_output=True, text=True, timeout=60)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("/proc/version/nope.jsonl", result.stderr)


if __name__ == "__main__":
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest)

#!/usr/bin/python3
"""GET /metrics (issue 6, "Metrics"), black-box: a live scrape after a known workload.

Usage:
  test_metrics.py --pycell PATH [unittest arguments, e.g. -v or -k Cli]

One server runs for the module (tests/pycell_server.py), with `--metrics-listen 127.0.0.1:0`: a
second, keyless listener that serves only /metrics, whose address the server prints as
`pycell serve: metrics on http://HOST:PORT/metrics`. With the bootstrap admin key the module runs
a known workload (sessions, cells that succeed, raise, sleep and time out, uploads and a download,
a session ended by DELETE, refused keys, a project quota hit once), then scrapes /metrics with a
user key (403), and with an operator key between two walks of the audit log (so the audit counter
can be compared with the log's length). The tests check that scrape: who may read it,
`promtool check metrics` (Debian's `prometheus` package), and each metric against what the
workload did. `pycell metrics list` is checked against the same server and against a fake one
(http.server) that sends malformed and hostile lines.

Only the standard library.
"""

import http.server
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)
from pycell_server import unique  # noqa: E402

PYCELL = None  # The binary, from --pycell.
WORK_DIR = None  # Temporary folder of this run.
SERVER = None  # The module's server.
ADMIN = None  # A client of it with the bootstrap admin key.
RUN = None  # What the workload did and what the scrapes returned (Workload).

RUNTIME_DIR = "/run/pycell-metrics-tests"
METRICS_LINE_RE = re.compile(r"^pycell serve: metrics on http://(\S+):(\d+)/metrics$")
WRONG_KEY = "pyc_%s_%s" % ("0" * 26, "0" * 32)
UPLOAD_SIZES = (1234, 56789)
EXECUTIONS_ROUTE = "/v1/sessions/{id}/executions"
# An id of any kind pycell makes: no label may hold one (routes are patterns).
RAW_ID_RE = re.compile(r"(sess|file|exec|key|proj|evt)_[0-9A-Za-z]{20,}")


# --- the text exposition format ----------------------------------------------------------------


SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?[ \t]+(\S+)([ \t]+-?\d+)?[ \t]*$")
LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def unescape(value):
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\":
            out.append({"\\": "\\", '"': '"', "n": "\n"}[value[i + 1]])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_exposition(text):
    """(samples, types): samples as (name, {label: value}, value) in the order sent; types from
    the `# TYPE` lines. Raises on a line it cannot read: the server's output must be clean."""
    samples, types = [], {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        match = SAMPLE_RE.match(line)
        if not match:
            raise ValueError("not a sample line: %r" % line)
        name, braces, value = match.group(1), match.group(2), match.group(3)
        labels = {}
        if braces:
            inner, pos = braces[1:-1], 0
            while inner[pos:].strip():
                label = LABEL_RE.match(inner, pos)
                if not label:
                    raise ValueError("bad labels in %r" % line)
                labels[label.group(1)] = unescape(label.group(2))
                pos = label.end()
        samples.append((name, labels, float(value)))
    return samples, types


def series_key(name, labels):
    return (name, tuple(sorted(labels.items())))


class Scrape:
    """One parsed scrape."""

    def __init__(self, text):
        self.text = text
        self.samples, self.types = parse_exposition(text)
        self.by_key = {series_key(n, l): v for n, l, v in self.samples}

    def series(self, name, **labels):
        """[(labels, value)] of the samples named `name` whose labels include `labels`."""
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == v2 for k, v2 in labels.items())]

    def total(self, name, **labels):
        return sum(v for _, v in self.series(name, **labels))

    def describe(self, name):
        rows = ["  %s%s %s" % (n, json.dumps(l, sort_keys=True), v)
                for n, l, v in self.samples if n == name]
        return "%s in the scrape:\n%s" % (name, "\n".join(rows) or "  (no series)")


# --- the module's server and workload ----------------------------------------------------------


def run_cli(*args, timeout=120):
    return pycell_server.run_pycell(PYCELL, args, WORK_DIR, timeout)


expect = pycell_server.expect


def make_key(principal, project, role):
    return ADMIN.with_key(pycell_server.create_key(ADMIN, principal, project, role))


def audit_events(client):
    """Every audit event the client may see, oldest first, through every page."""
    events, after = [], None
    for _ in range(200):
        query = {"limit": 1000}
        if after is not None:
            query["after_seq"] = after
        page = expect(client.get("/v1/audit?" + urllib.parse.urlencode(query)), 200,
                      "GET /v1/audit")
        events += page["data"]
        if not page.get("has_more") or not page["data"]:
            return events
        after = page["data"][-1]["seq"]
    raise AssertionError("GET /v1/audit did not stop paging")


def metrics_listener_address(server, timeout=10):
    """(host, port) from the server's `metrics on` stdout line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(server.stdout_lines):
            match = METRICS_LINE_RE.match(line)
            if match:
                return match.group(1), int(match.group(2))
        time.sleep(0.1)
    raise AssertionError("with --metrics-listen 127.0.0.1:0 the server printed no line "
                         "`pycell serve: metrics on http://HOST:PORT/metrics`; stdout: %r" %
                         server.stdout_lines)


class Workload:
    """What the module's workload did (the expected counts) and the scrapes taken after it."""

    def __init__(self):
        self.operator = make_key("metrics-operator", "default", "operator")
        self.user = make_key("metrics-user", "default", "user")
        self.sessions_created = 0
        self.run_workload()
        self.scrape_all()

    def run_workload(self):
        # Two sessions, one with metadata.
        first = expect(ADMIN.create_session(), 201, "POST /v1/sessions")
        second = expect(ADMIN.create_session(metadata={"agent_id": "metrics-test"}), 201,
                        "POST /v1/sessions with metadata")
        self.sessions_created += 2
        # Three cells in one: ok, error, ok after 0.2 s.
        self.records = []
        for code, status in (("1+1", "ok"), ("raise ValueError('metrics test')", "error"),
                             ("import time; time.sleep(0.2)", "ok")):
            record = expect(ADMIN.execute(first["id"], code), 200, "running %r" % code)
            if record["status"] != status:
                raise AssertionError("cell %r: want status %s, got %r" % (code, status, record))
            self.records.append(record)
        # One that times out, in the other session.
        record = expect(ADMIN.execute(second["id"], "while True: pass", timeout_s=1), 200,
                        "running a cell past its 1 s timeout")
        if record["status"] != "timeout":
            raise AssertionError("want status timeout, got %r" % record)
        self.timeout_action = record.get("timeout_action")
        # Two uploads of known sizes, one download.
        self.files = []
        for size in UPLOAD_SIZES:
            self.files.append(expect(ADMIN.upload_raw(unique("metrics", "txt"),
                                                     os.urandom(size).hex()[:size].encode()),
                                     201, "uploading %d bytes" % size))
        content = ADMIN.get("/v1/files/%s/content" % self.files[0]["id"])
        expect(content, 200, "downloading a file")
        self.downloaded = len(content.body)
        # One session ended by DELETE.
        expect(ADMIN.delete("/v1/sessions/" + first["id"]), 200, "DELETE /v1/sessions/{id}")
        self.ended_closed = 1
        # Three refused keys (401) and one key without the permission (403).
        anonymous = ADMIN.with_key(WRONG_KEY)
        for _ in range(3):
            expect(anonymous.get("/v1/files"), 401, "GET /v1/files with an unknown key")
        self.unauthenticated = 3
        expect(self.user.get("/v1/audit"), 403, "GET /v1/audit with a user key")
        self.denied = 1
        # A project quota, hit once: one concurrent session, a second refused.
        name = "metrics-quota-" + os.urandom(3).hex()
        expect(ADMIN.post_json("/v1/projects", {"name": name,
                                                "quotas": {"concurrent_sessions": 1}}),
               201, "POST /v1/projects with a quota")
        quota_user = make_key("metrics-quota-user", name, "user")
        held = expect(quota_user.create_session(), 201, "the quota's first session")
        self.sessions_created += 1
        refused = quota_user.create_session()
        if refused.status != 429:
            raise AssertionError("a second session past concurrent_sessions=1: want 429, got %r" %
                                 refused)
        self.quota_refusals = 1
        expect(quota_user.delete("/v1/sessions/" + held["id"]), 200, "ending the quota session")
        self.ended_closed += 1

    def scrape_all(self):
        # The user's scrape is refused (and audited) before the log is walked.
        self.user_scrape = self.user.get("/metrics")
        self.denied += 1
        self.audit_before = audit_events(ADMIN)
        self.operator_reply = self.operator.get("/metrics")
        self.audit_after = audit_events(ADMIN)
        if self.operator_reply.status != 200:
            raise AssertionError("GET /metrics with an operator key: want 200, got %r" %
                                 self.operator_reply)
        self.scrape = Scrape(self.operator_reply.body.decode("utf-8"))


def setUpModule():
    global SERVER, ADMIN, WORK_DIR, RUN
    SERVER, WORK_DIR = pycell_server.ServeProcess.in_new_folder(PYCELL, "pycell-metrics-tests-", RUNTIME_DIR)
    def setup():
        global ADMIN
        SERVER.metrics_host, SERVER.metrics_port = metrics_listener_address(SERVER)
        ADMIN = SERVER.client()
        return Workload()

    RUN = pycell_server.start_for_module(SERVER, setup,
                                         extra_args=("--metrics-listen", "127.0.0.1:0"))


def tearDownModule():
    pycell_server.stop_for_module(SERVER, WORK_DIR)


def listener():
    """A client of the metrics listener, without a key."""
    return pycell_server.Client(SERVER.metrics_host, SERVER.metrics_port, None)


# --- who may scrape, and the format ------------------------------------------------------------


class TestAccess(pycell_server.HttpAssertions, unittest.TestCase):
    def test_operator_may_scrape(self):
        reply = RUN.operator_reply
        self.assertEqual(reply.status, 200, reply)
        self.assertTrue((reply.header("content-type") or "").startswith("text/plain"), reply)
        self.assertIn("version=0.0.4", reply.header("content-type") or "")

    def test_user_may_not(self):
        self.assertError(RUN.user_scrape, 403, "permission_denied")

    def test_no_key_is_401_on_the_main_listener(self):
        self.assertError(ADMIN.with_key(None).get("/metrics"), 401, "unauthenticated")

    def test_listener_serves_metrics_without_a_key(self):
        self.assertEqual(SERVER.metrics_host, "127.0.0.1")
        self.assertNotEqual(SERVER.metrics_port, SERVER.port)
        reply = listener().get("/metrics")
        self.assertEqual(reply.status, 200, reply)
        Scrape(reply.body.decode("utf-8"))  # Readable.
        self.assertIn(b"pycell_executions_total", reply.body)

    def test_listener_serves_nothing_else(self):
        for path in ("/", "/v1/files", "/v1/me", "/healthz", "/metrics/extra", "/v1/audit"):
            with self.subTest(path=path):
                self.assertEqual(listener().get(path).status, 404)
        # Not even with the admin key.
        self.assertEqual(listener().with_key(SERVER.admin_key).get("/v1/files").status, 404)

    def test_promtool_check_metrics(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.fail("promtool is not installed (Debian's `prometheus` package; "
                      "scripts/install-deps.sh installs it)")
        proc = subprocess.run([promtool, "check", "metrics"], input=RUN.operator_reply.body,
                              capture_output=True, timeout=60)
        output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        # 0: clean; 3: lint findings only (style, not errors); 1: the scrape does not parse.
        self.assertIn(proc.returncode, (0, 3), "promtool check metrics exited %d:\n%s" %
                      (proc.returncode, output))
        self.assertNotIn("error", output.lower(), "promtool check metrics:\n%s" % output)
        if proc.returncode == 3:
            print("\npromtool lint findings (not failures):\n" + output, file=sys.stderr)


# --- values against the workload --------------------------------------------------------------


class TestValues(unittest.TestCase):
    maxDiff = 6000

    def assertAtLeast(self, name, want, **labels):
        have = RUN.scrape.total(name, **labels)
        self.assertGreaterEqual(have, want, "%s%s: want ≥ %s, got %s\n%s" %
                                (name, json.dumps(labels), want, have, RUN.scrape.describe(name)))

    def test_executions_by_status(self):
        self.assertAtLeast("pycell_executions_total", 2, status="ok")
        self.assertAtLeast("pycell_executions_total", 1, status="error")
        self.assertAtLeast("pycell_executions_total", 1, status="timeout")

    def test_execution_duration(self):
        self.assertAtLeast("pycell_execution_duration_seconds_count", 4)
        # The sleep alone was 0.2 s, the timeout 1 s.
        self.assertAtLeast("pycell_execution_duration_seconds_sum", 1.2)
        self.assertEqual(RUN.scrape.types.get("pycell_execution_duration_seconds"), "histogram")
        inf = RUN.scrape.series("pycell_execution_duration_seconds_bucket", le="+Inf")
        self.assertEqual(len(inf), 1, RUN.scrape.describe("pycell_execution_duration_seconds_bucket"))
        self.assertEqual(inf[0][1], RUN.scrape.total("pycell_execution_duration_seconds_count"))

    def test_sessions(self):
        self.assertAtLeast("pycell_sessions_created_total", RUN.sessions_created)
        self.assertAtLeast("pycell_sessions_created_total", 2, pool="default")
        self.assertAtLeast("pycell_sessions_ended_total", RUN.ended_closed, reason="closed")
        self.assertAtLeast("pycell_session_duration_seconds_count", RUN.ended_closed)

    def test_transfers(self):
        self.assertAtLeast("pycell_transfers_total", len(UPLOAD_SIZES), direction="upload")
        self.assertAtLeast("pycell_transfer_bytes_total", sum(UPLOAD_SIZES), direction="upload")
        self.assertAtLeast("pycell_transfers_total", 1, direction="download")
        self.assertAtLeast("pycell_transfer_bytes_total", RUN.downloaded, direction="download")

    def test_http_requests_by_route_pattern(self):
        self.assertAtLeast("pycell_http_requests_total", 4, route=EXECUTIONS_ROUTE)
        self.assertAtLeast("pycell_http_requests_total", 4, route=EXECUTIONS_ROUTE,
                           method="POST", status="200")
        self.assertAtLeast("pycell_http_requests_total", 3, status="401")
        self.assertAtLeast("pycell_http_requests_total", 1, route="/metrics", status="403")
        self.assertAtLeast("pycell_http_request_duration_seconds_count", 4,
                           route=EXECUTIONS_ROUTE)
        for name, labels, _ in RUN.scrape.samples:
            for label, value in labels.items():
                self.assertNotIn("sess_", value, "%s%r: a raw id in a label" % (name, labels))
                self.assertIsNone(RAW_ID_RE.search(value),
                                  "%s%r: a raw id in a label" % (name, labels))

    def test_auth_failures(self):
        unauthenticated = sum(v for l, v in RUN.scrape.series("pycell_auth_failures_total")
                              if l.get("reason") != "permission")
        self.assertGreaterEqual(unauthenticated, RUN.unauthenticated,
                                RUN.scrape.describe("pycell_auth_failures_total"))
        # GET /v1/audit and GET /metrics with a user key.
        self.assertAtLeast("pycell_auth_failures_total", RUN.denied, reason="permission")

    def test_quota_refusals(self):
        self.assertAtLeast("pycell_quota_refusals_total", RUN.quota_refusals)
        self.assertAtLeast("pycell_quota_refusals_total", 1, quota="concurrent_sessions")

    def test_audit_events_are_the_logs_length(self):
        before, after = len(RUN.audit_before), len(RUN.audit_after)
        self.assertEqual(before, after, "the audit log grew while it was scraped (%d → %d): "
                         "the comparison below is not exact" % (before, after))
        self.assertEqual(RUN.audit_before[-1]["seq"], before,
                         "the admin's walk of the log is not the whole log")
        self.assertEqual(RUN.scrape.total("pycell_audit_events_total"), before,
                         RUN.scrape.describe("pycell_audit_events_total"))

    def test_pool_sessions(self):
        for state in ("ready", "active", "executing"):
            with self.subTest(state=state):
                series = RUN.scrape.series("pycell_pool_sessions", pool="default", state=state)
                self.assertEqual(len(series), 1, RUN.scrape.describe("pycell_pool_sessions"))
                self.assertGreaterEqual(series[0][1], 0)
        # One session (the metadata one, unless the timeout's kill ended it) may still be active;
        # none runs a cell now.
        self.assertEqual(RUN.scrape.total("pycell_pool_sessions", pool="default",
                                          state="executing"), 0)

    def test_sandbox_timeout_event(self):
        timeouts = (RUN.scrape.total("pycell_sandbox_events_total", event="timeout_interrupted") +
                    RUN.scrape.total("pycell_sandbox_events_total", event="timeout_killed"))
        self.assertGreaterEqual(timeouts, 1, RUN.scrape.describe("pycell_sandbox_events_total"))
        if RUN.timeout_action:
            self.assertAtLeast("pycell_sandbox_events_total", 1,
                               event="timeout_" + RUN.timeout_action)

    def test_every_metric_of_the_issue_is_declared(self):
        for name, kind in (("pycell_sessions_created_total", "counter"),
                           ("pycell_sessions_ended_total", "counter"),
                           ("pycell_session_duration_seconds", "histogram"),
                           ("pycell_executions_total", "counter"),
                           ("pycell_execution_duration_seconds", "histogram"),
                           ("pycell_sandbox_events_total", "counter"),
                           ("pycell_transfers_total", "counter"),
                           ("pycell_transfer_bytes_total", "counter"),
                           ("pycell_http_requests_total", "counter"),
                           ("pycell_http_request_duration_seconds", "histogram"),
                           ("pycell_auth_failures_total", "counter"),
                           ("pycell_quota_refusals_total", "counter"),
                           ("pycell_audit_events_total", "counter"),
                           ("pycell_pool_refill_seconds", "histogram"),
                           ("pycell_pool_sessions", "gauge"),
                           ("pycell_files_stored", "gauge"),
                           ("pycell_stored_bytes", "gauge")):
            with self.subTest(metric=name):
                self.assertEqual(RUN.scrape.types.get(name), kind)

    def test_stored_files(self):
        self.assertAtLeast("pycell_files_stored", len(UPLOAD_SIZES))
        self.assertAtLeast("pycell_stored_bytes", sum(UPLOAD_SIZES))
        # The pool was filled at least once (--ready-sessions 1).
        self.assertAtLeast("pycell_pool_refill_seconds_count", 1)


# --- pycell metrics list -----------------------------------------------------------------------


def without_scrape_route(keys):
    """Series keys less those of the /metrics route (each scrape changes them)."""
    return {k for k in keys if ("route", "/metrics") not in k[1]}


class TestCli(unittest.TestCase):
    maxDiff = 6000

    def cli(self, *args, key=None):
        key = key if key is not None else RUN.operator.key
        code, out, err = run_cli("metrics", "list", "--url", SERVER.url(), "--key", key, *args)
        self.assertEqual(code, 0, "pycell metrics list %s: exit %d\n%s%s" %
                         (" ".join(args), code, out, err))
        self.assertNotIn("skipped", err, "the CLI could not read some of the server's lines")
        return out

    def json_list(self, *args):
        out = self.cli("--json", *args)
        data = json.loads(out)
        self.assertIsInstance(data, list, out)
        result = {}
        for item in data:
            self.assertEqual(set(item), {"name", "labels", "value"}, item)
            result[series_key(item["name"], item["labels"])] = item["value"]
        return result

    def test_json_matches_the_scrape(self):
        before = Scrape(RUN.operator.get("/metrics").body.decode("utf-8"))
        listed = self.json_list()
        after = Scrape(RUN.operator.get("/metrics").body.decode("utf-8"))
        # Without --metric, every series but histogram buckets.
        want = {k for k in before.by_key if not k[0].endswith("_bucket")}
        self.assertEqual(without_scrape_route(listed), without_scrape_route(want))
        for key in without_scrape_route(listed):
            with self.subTest(series=key):
                value = listed[key]
                self.assertIsInstance(value, (int, float), key)
                self.assertTrue(any(math.isclose(value, s.by_key.get(key, math.nan),
                                                 rel_tol=1e-12) for s in (before, after)),
                                "%s: the CLI says %r, the scrapes around it %r and %r" %
                                (key, value, before.by_key.get(key), after.by_key.get(key)))

    def test_metric_filters(self):
        listed = self.json_list("--metric", "pycell_executions_total")
        self.assertTrue(listed)
        self.assertEqual({k[0] for k in listed}, {"pycell_executions_total"})
        statuses = {dict(k[1]).get("status") for k in listed}
        self.assertLessEqual({"ok", "error", "timeout"}, statuses)
        self.assertEqual(listed[series_key("pycell_executions_total", {"status": "error"})],
                         RUN.scrape.total("pycell_executions_total", status="error"))

    def test_histogram_filter_shows_its_buckets(self):
        listed = self.json_list("--metric", "pycell_execution_duration_seconds")
        names = {k[0] for k in listed}
        self.assertEqual(names, {"pycell_execution_duration_seconds_bucket",
                                 "pycell_execution_duration_seconds_count",
                                 "pycell_execution_duration_seconds_sum"})
        self.assertIn(series_key("pycell_execution_duration_seconds_bucket", {"le": "+Inf"}),
                      listed)

    def test_table(self):
        out = self.cli()
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["METRIC", "LABELS", "VALUE"], out[:500])
        self.assertIn("pycell_execution_duration_seconds_count", out)
        self.assertIn("pycell_execution_duration_seconds_sum", out)
        self.assertNotIn("_bucket", out, "buckets are shown only with --metric")
        rows = [l.split() for l in lines[1:]]
        error = [r for r in rows if r[0] == "pycell_executions_total" and r[1] == 'status="error"']
        self.assertEqual(len(error), 1, out)
        self.assertEqual(float(error[0][2]),
                         RUN.scrape.total("pycell_executions_total", status="error"))

    def test_unknown_metric(self):
        code, out, err = run_cli("metrics", "list", "--url", SERVER.url(), "--key",
                                 RUN.operator.key, "--metric", "pycell_no_such_thing")
        self.assertEqual(code, 1, out + err)
        self.assertIn("pycell_no_such_thing", err)

    def test_user_key_is_refused(self):
        code, out, err = run_cli("metrics", "list", "--url", SERVER.url(), "--key", RUN.user.key)
        self.assertEqual(code, 1, out + err)
        self.assertIn("permission_denied", err)
        self.assertIn("403", err)

    def test_listener_address_as_printed(self):
        # The line `serve` prints, /metrics and all, works as --url; the listener needs no key.
        url = "http://%s:%d/metrics" % (SERVER.metrics_host, SERVER.metrics_port)
        code, out, err = run_cli("metrics", "list", "--url", url, "--json",
                                 "--metric", "pycell_executions_total")
        self.assertEqual(code, 0, out + err)
        self.assertTrue(json.loads(out), out)


# --- pycell metrics list against a hostile server ----------------------------------------------


HOSTILE_SCRAPE = (
    b"# HELP good_total A counter.\n"
    b"# TYPE good_total counter\n"
    b'good_total{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 3\n'
    b"# TYPE odd_seconds histogram\n"
    b'odd_seconds_bucket{le="0.5"} 1\n'
    b'odd_seconds_bucket{le="+Inf"} 2\n'
    b"odd_seconds_count 2\n"
    b"odd_seconds_sum 0.75\r\n"
    b'esc_total{a="\x1b[31mred\x07"} +Inf\n'
    b"with_timestamp{x=\"1\",} 1.5e3 1700000000000\n"
    b"   \t\n"
    b'utf8_total{name="caf\xc3\xa9 \xff"} -2\n'
    # Not in the format: each is skipped and counted.
    b"no_value_total\n"
    b'unterminated{a="x} 1\n'
    b'not_a_number{a="x"} twelve\n'
    b'{a="x"} 1\n'
    b'empty_label_name{="x"} 1\n'
    b'duplicate{a="x",a="y"} 1\n'
    b'bad_escape{a="\\q"} 1\n'
    b"\x00\xff\xfe garbage\n"
    b"too_many 1 2 3\n"
    b"9starts_with_digit 1\n"
    b'trailing{a="x"}} 1\n'
    b"nan_value NaN\n"  # This one is fine.
)
HOSTILE_SKIPPED = 11


class FakeServer:
    """An http.server on a free port answering GET /metrics with `body`."""

    def __init__(self, body):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = outer.body if self.path == "/metrics" else b'{"error":{}}'
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.body = body
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class TestCliParser(unittest.TestCase):
    def setUp(self):
        self.fake = FakeServer(HOSTILE_SCRAPE)
        self.addCleanup(self.fake.close)

    def list(self, *args):
        code, out, err = run_cli("metrics", "list", "--url", self.fake.url, "--key", WRONG_KEY,
                                 *args)
        self.assertEqual(code, 0, "exit %d\n%s%s" % (code, out, err))
        return out, err

    def test_json(self):
        out, err = self.list("--json")
        self.assertIn("skipped %d lines" % HOSTILE_SKIPPED, err)
        data = json.loads(out)
        got = {(d["name"], json.dumps(d["labels"], sort_keys=True)): d["value"] for d in data}
        self.assertEqual(got, {
            ("good_total", json.dumps({"a": 'q"uote', "b": "back\\slash", "c": "new\nline"},
                                      sort_keys=True)): 3,
            ("odd_seconds_count", "{}"): 2,
            ("odd_seconds_sum", "{}"): 0.75,
            ("esc_total", json.dumps({"a": "\x1b[31mred\x07"})): "+Inf",
            ("with_timestamp", json.dumps({"x": "1"})): 1500,
            ("utf8_total", json.dumps({"name": "café \ufffd"})): -2,
            ("nan_value", "{}"): "NaN",
        })

    def test_table_escapes_control_characters(self):
        out, _ = self.list()
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\x07", out)
        self.assertIn('a="\\x1b[31mred\\x07"', out)
        self.assertIn('c="new\\nline"', out)
        self.assertNotIn("odd_seconds_bucket", out)

    def test_histogram_buckets_by_its_name(self):
        out, _ = self.list("--json", "--metric", "odd_seconds")
        names = sorted(d["name"] for d in json.loads(out))
        self.assertEqual(names, ["odd_seconds_bucket", "odd_seconds_bucket",
                                 "odd_seconds_count", "odd_seconds_sum"])

    def test_random_bytes(self):
        rng = __import__("random").Random(6)
        alphabet = b'{}",=\\ \t\n#abc_:019.+-eInfNa\x00\xff'
        for _ in range(20):
            self.fake.body = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 4000)))
            code, out, err = run_cli("metrics", "list", "--url", self.fake.url, "--key",
                                     WRONG_KEY, "--json")
            self.assertEqual(code, 0, "on %r: exit %d\n%s" % (self.fake.body[:200], code, err))
            self.assertIsInstance(json.loads(out), list)
        self.fake.body = b"x" * (4 << 20) + b"{" * (1 << 20)
        code, _, err = run_cli("metrics", "list", "--url", self.fake.url, "--key", WRONG_KEY)
        self.assertEqual(code, 0, err)
        self.assertIn("skipped 1 line", err)


if __name__ == "__main__":
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest)

#!/usr/bin/python3
"""The `pycell` client commands (files, sessions, exec, lineage, keys, projects, audit, usage)
against a real `pycell serve`.

Usage:
  test_cli.py --pycell PATH [unittest arguments, e.g. -v or -k Exec]

One server runs for the whole module: port 0, a temporary data dir, stopped with SIGTERM at the
end. Every test runs the client binary as a person or a script would (PYCELL_URL and PYCELL_KEY
— the admin key the server wrote to <data dir>/admin.key — in the environment, or --url and
--key) and checks its exit code, its stdout and stderr, and the files it wrote. One test talks to
a fake server (http.server) that lies about a file's SHA-256; DataDirTest runs a second server of
its own, which it stops to work on its data dir directly (keys, projects, audit verify) and to
tamper with the audit log in SQLite.

Only the standard library.
"""

import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)

PYCELL = None  # The binary, from --pycell.
WORK_DIR = None  # Temporary folder of this run.
SERVER = None  # The module's `pycell serve` process.
URL = None  # Its base URL.

RUNTIME_DIR = "/run/pycell-cli-tests"
DATA_DIR_RUNTIME_DIR = "/run/pycell-cli-tests-data-dir"  # DataDirTest's own server.
ID_RE = {p: re.compile(p + "[0-9a-zA-Z]{26}") for p in ("file_", "sess_", "exec_", "key_",
                                                          "proj_")}
KEY_RE = re.compile(r"pyc_[0-9A-Za-z]{26}_[0-9A-Za-z]{32}")
ADMIN = object()  # pycell(key=ADMIN): the module server's admin key.
MISSING_FILE_ID = "file_" + "0" * 26
MISSING_SESSION_ID = "sess_" + "0" * 26
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- the server ------------------------------------------------------------------------------


def setUpModule():
    global SERVER, URL, WORK_DIR
    WORK_DIR = tempfile.mkdtemp(prefix="pycell-cli-tests-")
    os.makedirs(os.path.join(WORK_DIR, "data"))
    SERVER = pycell_server.ServeProcess(PYCELL, os.path.join(WORK_DIR, "data"), RUNTIME_DIR,
                                        os.path.join(WORK_DIR, "server.log"))
    try:
        SERVER.start()
    except BaseException:
        if SERVER.proc and SERVER.proc.poll() is None:
            SERVER.kill()
        raise
    URL = "http://%s:%d" % (SERVER.host, SERVER.port)


def tearDownModule():
    try:
        if SERVER is not None and SERVER.proc.poll() is None:
            rc = SERVER.stop(timeout=60)
            if rc != 0:
                raise AssertionError("after SIGTERM the server exited %s\n%s" %
                                     (rc, SERVER.log_tail()))
    finally:
        shutil.rmtree(WORK_DIR, ignore_errors=True)


# --- running the client ----------------------------------------------------------------------


class Run:
    def __init__(self, args, proc):
        self.args = args
        self.code = proc.returncode
        self.out = proc.stdout.decode("utf-8", "replace")
        self.err = proc.stderr.decode("utf-8", "replace")

    def json_lines(self):
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    def json(self):
        objects = self.json_lines()
        assert len(objects) == 1, "want one JSON line, got %r" % self.out
        return objects[0]

    def __repr__(self):
        return "pycell %s -> exit %s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(self.args), self.code, self.out[-3000:], self.err[-3000:])


def client_env(url=True, key=ADMIN, extra=None):
    """The environment the client runs in: PYCELL_URL pointing at the module's server (a URL,
    or None for none; True: the module's), PYCELL_KEY (the admin key by default; None for none),
    and no PYCELL_DATA_DIR unless `extra` sets it."""
    env = dict(os.environ)
    for name in ("PYCELL_URL", "PYCELL_KEY", "PYCELL_DATA_DIR"):
        env.pop(name, None)
    if url:
        env["PYCELL_URL"] = URL if url is True else url
    if key is ADMIN:
        key = SERVER.admin_key
    if key is not None:
        env["PYCELL_KEY"] = key
    env.update(extra or {})
    return env


def pycell(*args, stdin=None, cwd=None, url=True, key=ADMIN, env=None, timeout=180):
    """Runs the client with PYCELL_URL and PYCELL_KEY set as client_env() sets them. The working
    folder is a fresh empty one unless `cwd` is given, so no ./var/admin.key is found by accident."""
    if cwd is None:
        cwd = tempfile.mkdtemp(dir=WORK_DIR)
    proc = subprocess.run([PYCELL] + list(args), input=stdin.encode() if stdin else b"",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                          env=client_env(url, key, env), timeout=timeout)
    return Run(list(args), proc)


class CliTestCase(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=WORK_DIR)

    def assertExit(self, run, code):
        self.assertEqual(run.code, code, run)

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return path

    def active_sessions(self):
        run = pycell("sessions", "list", "--status", "active", "--limit", "1000", "--json")
        self.assertExit(run, 0)
        return {s["id"] for s in run.json()["data"]}


# --- files -----------------------------------------------------------------------------------


class FilesTest(CliTestCase):
    def test_upload_list_get_download_rm(self):
        payload = os.urandom(1 << 20) + b"\x00end"
        binary = self.write("blob.pkl", payload)
        table = self.write("table.csv", "a,b\n1,2\n")
        run = pycell("files", "upload", binary, table, "--json")
        self.assertExit(run, 0)
        uploaded = run.json_lines()
        self.assertEqual([f["filename"] for f in uploaded], ["blob.pkl", "table.csv"])
        blob = uploaded[0]
        self.assertRegex(blob["id"], ID_RE["file_"])
        self.assertEqual(blob["bytes"], len(payload))
        self.assertEqual(blob["sha256"], hashlib.sha256(payload).hexdigest())

        # Human upload: one line per file with its id.
        run = pycell("files", "upload", table)
        self.assertExit(run, 0)
        self.assertRegex(run.out, r"^file_\w{26}  table\.csv  8 B\n$")
        other_id = run.out.split()[0]

        run = pycell("files", "list", "--purpose", "input", "--limit", "1000", "--json")
        self.assertExit(run, 0)
        listed = run.json()
        self.assertEqual(listed["object"], "list")
        ids = [f["id"] for f in listed["data"]]
        self.assertIn(blob["id"], ids)
        self.assertIn(other_id, ids)
        run = pycell("files", "list")
        self.assertExit(run, 0)
        self.assertTrue(run.out.startswith("ID "), run)
        self.assertRegex(run.out, re.escape(blob["id"]) + r"\s+blob\.pkl\s+1\.0 MiB\s+input\s")
        run = pycell("files", "list", "--limit", "1")
        self.assertExit(run, 0)
        self.assertEqual(len(run.out.splitlines()), 2, run)
        self.assertIn("--after", run.err)

        run = pycell("files", "get", blob["id"], "--json")
        self.assertExit(run, 0)
        self.assertEqual(run.json(), blob)
        run = pycell("files", "get", blob["id"])
        self.assertExit(run, 0)
        self.assertIn("sha256: " + blob["sha256"] + "\n", run.out)
        self.assertIn("filename: blob.pkl\n", run.out)

        # Download: into the current folder under its name, verified, never over a file.
        run = pycell("files", "download", blob["id"], cwd=self.dir)
        self.assertExit(run, 1)  # blob.pkl is there already (the upload's source).
        self.assertIn("exists; pass --force", run.err)
        down = os.path.join(self.dir, "down")
        os.makedirs(down)
        run = pycell("files", "download", blob["id"], cwd=down)
        self.assertExit(run, 0)
        self.assertIn("SHA-256 verified", run.out)
        with open(os.path.join(down, "blob.pkl"), "rb") as f:
            got = f.read()
        self.assertEqual(got, payload)
        self.assertEqual(hashlib.sha256(got).hexdigest(), blob["sha256"])
        self.assertEqual(sorted(os.listdir(down)), ["blob.pkl"])  # No temporary file left.
        target = self.write("other.bin", b"old")
        run = pycell("files", "download", blob["id"], "-o", target)
        self.assertExit(run, 1)
        with open(target, "rb") as f:
            self.assertEqual(f.read(), b"old")
        run = pycell("files", "download", blob["id"], "-o", target, "--force", "--json")
        self.assertExit(run, 0)
        self.assertEqual(run.json()["id"], blob["id"])
        with open(target, "rb") as f:
            self.assertEqual(f.read(), payload)
        run = pycell("files", "download", blob["id"], "-o", down + "/sub/x")
        self.assertExit(run, 1)  # The folder does not exist.

        run = pycell("files", "rm", blob["id"], other_id)
        self.assertExit(run, 0)
        self.assertEqual(run.out, "deleted %s\ndeleted %s\n" % (blob["id"], other_id))
        run = pycell("files", "get", blob["id"])
        self.assertExit(run, 1)
        self.assertRegex(run.err, r"^pycell: .*%s.* \(not_found, HTTP 404\)\n$" % blob["id"])
        run = pycell("files", "rm", uploaded[1]["id"], MISSING_FILE_ID, "--json")
        self.assertExit(run, 1)  # One of them was missing; the other is deleted anyway.
        self.assertEqual(run.json(), {"id": uploaded[1]["id"], "object": "file", "deleted": True})
        self.assertIn("(not_found, HTTP 404)", run.err)

    def test_names_are_kept_exactly(self):
        name = 'dönnées "q" a\\b.csv'
        path = self.write(name, "n\n1\n")
        run = pycell("files", "upload", path, "--json")
        self.assertExit(run, 0)
        file = run.json()
        self.assertEqual(file["filename"], name)
        down = os.path.join(self.dir, "down")
        os.makedirs(down)
        self.assertExit(pycell("files", "download", file["id"], cwd=down), 0)
        self.assertEqual(os.listdir(down), [name])
        run = pycell("exec", "--file", path, stdin="import os; print(os.listdir('/mnt/data'))")
        self.assertExit(run, 0)
        self.assertEqual(run.out, repr([name]) + "\n")
        self.assertExit(pycell("files", "rm", file["id"]), 0)

    def test_rejected_upload_and_usage(self):
        bad = self.write("x.exe", b"MZ")
        run = pycell("files", "upload", bad)
        self.assertExit(run, 1)
        self.assertRegex(run.err, r"^pycell: .*x\.exe.*\(invalid_request, HTTP 400\)\n$")
        run = pycell("files", "upload", os.path.join(self.dir, "missing.csv"))
        self.assertExit(run, 2)
        run = pycell("files")
        self.assertExit(run, 2)
        run = pycell("files", "list", "--purpose", "neither")
        self.assertExit(run, 2)

    def test_download_with_a_wrong_sha256_fails_loudly(self):
        content = b"these bytes do not hash to what the server claims\n"

        class Liar(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.endswith("/content"):
                    body, kind = content, "application/octet-stream"
                else:
                    body = json.dumps({"id": MISSING_FILE_ID, "object": "file",
                                       "filename": "lie.txt", "bytes": len(content),
                                       "sha256": "0" * 64}).encode()
                    kind = "application/json"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        fake = http.server.HTTPServer(("127.0.0.1", 0), Liar)
        thread = threading.Thread(target=fake.serve_forever, daemon=True)
        thread.start()
        try:
            run = pycell("files", "download", MISSING_FILE_ID, "--url",
                         "http://127.0.0.1:%d" % fake.server_address[1], cwd=self.dir)
        finally:
            fake.shutdown()
            fake.server_close()
        self.assertExit(run, 1)
        self.assertIn("SHA-256 MISMATCH", run.err)
        self.assertIn(hashlib.sha256(content).hexdigest(), run.err)
        self.assertEqual(os.listdir(self.dir), [])  # Neither the file nor a temporary one.


# --- sessions --------------------------------------------------------------------------------


class SessionsTest(CliTestCase):
    def test_create_show_list_rm(self):
        run = pycell("files", "upload", self.write("in.csv", "x\n1\n"), "--json")
        self.assertExit(run, 0)
        file_id = run.json()["id"]
        run = pycell("sessions", "create", "--file", file_id, "--memory", "512m", "--timeout",
                     "30", "--metadata", "owner=cli-test", "--metadata", "note=a=b")
        self.assertExit(run, 0)
        self.assertRegex(run.out, "^" + ID_RE["sess_"].pattern + "\n$")
        sid = run.out.strip()

        run = pycell("sessions", "show", sid, "--json")
        self.assertExit(run, 0)
        session = run.json()
        self.assertEqual(session["status"], "active")
        self.assertEqual(session["metadata"], {"owner": "cli-test", "note": "a=b"})
        self.assertEqual(session["limits"]["memory_bytes"], 512 << 20)
        self.assertEqual(session["limits"]["execution_timeout_s"], 30)
        run = pycell("sessions", "show", sid)
        self.assertExit(run, 0)
        self.assertIn("status: active\n", run.out)
        self.assertIn("forked_from: -\n", run.out)
        self.assertIn("  owner: cli-test\n", run.out)

        # The placed file is there.
        run = pycell("exec", "--session", sid, stdin="print(open('/mnt/data/in.csv').read())")
        self.assertExit(run, 0)
        self.assertEqual(run.out, "x\n1\n\n")

        self.assertIn(sid, self.active_sessions())
        run = pycell("sessions", "list")
        self.assertExit(run, 0)
        self.assertRegex(run.out, re.escape(sid) + r"\s+active\s+default\s+1\s")

        # A fork names its origin, and has its variables.
        self.assertExit(pycell("exec", "--session", sid, stdin="x = 41"), 0)
        run = pycell("sessions", "fork", sid)
        self.assertExit(run, 0)
        self.assertRegex(run.out, "^" + ID_RE["sess_"].pattern + "\n$")
        fork = run.out.strip()
        self.assertNotEqual(fork, sid)
        run = pycell("sessions", "show", fork)
        self.assertExit(run, 0)
        self.assertIn("forked_from: %s\n" % sid, run.out)
        run = pycell("exec", "--session", fork, stdin="print(x + 1)")
        self.assertExit(run, 0)
        self.assertEqual(run.out, "42\n")
        run = pycell("sessions", "fork", MISSING_SESSION_ID)
        self.assertExit(run, 1)
        self.assertIn("no session", run.err)
        self.assertExit(pycell("sessions", "rm", fork), 0)

        run = pycell("sessions", "rm", sid)
        self.assertExit(run, 0)
        self.assertEqual(run.out, "ended %s (closed)\n" % sid)
        self.assertNotIn(sid, self.active_sessions())
        run = pycell("sessions", "list", "--status", "ended", "--limit", "1000", "--json")
        self.assertExit(run, 0)
        ended = {s["id"]: s for s in run.json()["data"]}
        self.assertEqual(ended[sid]["end_reason"], "closed")
        run = pycell("exec", "--session", sid, stdin="1")
        self.assertExit(run, 1)
        self.assertRegex(run.err, r"\(session_closed, HTTP 410\)\n$")

    def test_errors(self):
        run = pycell("sessions", "show", MISSING_SESSION_ID)
        self.assertExit(run, 1)
        self.assertRegex(run.err,
                         r"^pycell: .*%s.* \(not_found, HTTP 404\)\n$" % MISSING_SESSION_ID)
        run = pycell("sessions", "create", "--metadata", "novalue")
        self.assertExit(run, 2)
        run = pycell("sessions", "create", "--memory", "lots")
        self.assertExit(run, 2)
        run = pycell("sessions", "create", "--pool", "nope")
        self.assertExit(run, 1)
        self.assertIn("(invalid_request, HTTP 400)", run.err)


# --- exec ------------------------------------------------------------------------------------


class ExecTest(CliTestCase):
    def test_stdin_makes_and_ends_a_session(self):
        before = self.active_sessions()
        run = pycell("exec", stdin="print(6 * 7)\n'res' + 'ult'\n")
        self.assertExit(run, 0)
        self.assertEqual(run.out, "42\n'result'\n")
        self.assertEqual(self.active_sessions() - before, set())  # Ended afterwards.
        run = pycell("exec", "-", stdin="print('dash')")
        self.assertExit(run, 0)
        self.assertEqual(run.out, "dash\n")

    def test_state_across_exec_session_calls_from_files(self):
        run = pycell("sessions", "create")
        self.assertExit(run, 0)
        sid = run.out.strip()
        try:
            first = self.write("first.py", "counter = 41\n")
            second = self.write("second.py", "counter += 1\nprint('counter', counter)\n")
            self.assertExit(pycell("exec", "--session", sid, first), 0)
            run = pycell("exec", "--session", sid, second)
            self.assertExit(run, 0)
            self.assertEqual(run.out, "counter 42\n")
            self.assertIn(sid, self.active_sessions())  # --session: never ended by exec.
            # --file with --session uploads into that session.
            data = self.write("extra.txt", "more")
            run = pycell("exec", "--session", sid, "--file", data,
                         stdin="print(open('/mnt/data/extra.txt').read(), counter)")
            self.assertExit(run, 0)
            self.assertEqual(run.out, "more 42\n")
        finally:
            pycell("sessions", "rm", sid)

    def test_output_streams_in_order_as_it_comes(self):
        code = ("import sys, time\n"
                "print('first', flush=True)\n"
                "time.sleep(0.3)  # stdout and stderr are two pipes: order only across time\n"
                "print('to stderr', file=sys.stderr, flush=True)\n"
                "time.sleep(2.5)\n"
                "print('second', flush=True)\n")
        env = client_env()
        start = time.monotonic()
        proc = subprocess.Popen([PYCELL, "exec"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env)
        proc.stdin.write(code.encode())
        proc.stdin.close()
        lines, times = [], []
        for raw in proc.stdout:
            lines.append(raw.decode().rstrip("\n"))
            times.append(time.monotonic() - start)
        proc.stdout.close()
        self.assertEqual(proc.wait(60), 0)
        self.assertEqual(lines, ["first", "to stderr", "second"])
        # "first" came while the cell still slept, not with the record at the end.
        self.assertGreater(times[2] - times[0], 1.5, (lines, times))

    def test_ctrl_c_ends_the_session_it_made(self):
        before = self.active_sessions()
        env = client_env()
        proc = subprocess.Popen([PYCELL, "exec"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        proc.stdin.write(b"import time\nprint('started', flush=True)\ntime.sleep(120)\n")
        proc.stdin.close()
        self.assertEqual(proc.stdout.readline(), b"started\n")
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(30)
        finally:
            proc.kill()
            proc.stdout.close()
            err = proc.stderr.read()
            proc.stderr.close()
        self.assertEqual(rc, 130, err)
        self.assertIn(b"pycell: interrupted", err)
        self.assertEqual(self.active_sessions() - before, set())

    def test_exit_codes(self):
        run = pycell("exec", stdin="print('before')\nraise ValueError('boom')\n")
        self.assertExit(run, 1)
        self.assertEqual(run.out, "before\n")
        self.assertIn("ValueError: boom", run.err)
        self.assertIn("Traceback", run.err)

        run = pycell("exec", "--timeout", "1", stdin="import time\ntime.sleep(60)\n")
        self.assertExit(run, 124)
        self.assertIn("pycell: the cell timed out", run.err)

        run = pycell("exec", os.path.join(self.dir, "missing.py"))
        self.assertExit(run, 2)
        run = pycell("exec", "--timeout", "-3", stdin="1")
        self.assertExit(run, 2)

    def test_session_ended_by_the_cell_is_125(self):
        run = pycell("sessions", "create", "--memory", "128m")
        self.assertExit(run, 0)
        sid = run.out.strip()
        run = pycell("exec", "--session", sid,
                     stdin="x = bytearray(512 << 20)\nx[::4096] = b'a' * len(x[::4096])\n")
        self.assertExit(run, 125)
        self.assertIn("pycell: the session ended (memory)", run.err)

    def test_out_saves_artifacts_and_charts(self):
        data = self.write("numbers.csv", "n\n1\n2\n3\n")
        code = ("import os\n"
                "import matplotlib.pyplot as plt\n"
                "total = sum(int(l) for l in open('/mnt/data/numbers.csv').read().split()[1:])\n"
                "os.makedirs('/mnt/data/reports/2024', exist_ok=True)\n"
                "open('/mnt/data/reports/2024/total.txt', 'w').write('total=%d\\n' % total)\n"
                "plt.plot([1, 3, 2])\n"
                "plt.show()\n"
                "print('done')\n")
        out = os.path.join(self.dir, "out")
        run = pycell("exec", "--file", data, "--out", out, stdin=code)
        self.assertExit(run, 0)
        with open(os.path.join(out, "reports", "2024", "total.txt")) as f:
            self.assertEqual(f.read(), "total=6\n")
        pngs = [n for n in os.listdir(out) if n.endswith(".png")]
        self.assertEqual(len(pngs), 1, os.listdir(out))
        self.assertRegex(pngs[0], r"^output-1-1\.png$")
        with open(os.path.join(out, pngs[0]), "rb") as f:
            png = f.read()
        self.assertTrue(png.startswith(PNG_SIGNATURE))
        # The chart was announced, with its size. Its order against stdout is not asserted:
        # displays travel on the control socket and stdout on its pipe, and the server may read
        # either first when both are ready.
        self.assertEqual(sorted(run.out.splitlines()),
                         sorted(["[image/png, %d bytes]" % len(png), "done"]))
        self.assertIn("saved %s/reports/2024/total.txt" % out, run.err)
        # The input placed with --file is not an artifact, and nothing else was written.
        self.assertEqual(sorted(os.listdir(out)), sorted(["reports", pngs[0]]))

    def test_out_refuses_links_that_leave_the_folder(self):
        out = os.path.join(self.dir, "out")
        outside = os.path.join(self.dir, "outside")
        os.makedirs(out)
        os.makedirs(outside)
        os.symlink(outside, os.path.join(out, "sub"))
        code = ("import os\nos.makedirs('/mnt/data/sub', exist_ok=True)\n"
                "open('/mnt/data/sub/a.txt', 'w').write('a')\n"
                "open('/mnt/data/fine.txt', 'w').write('fine')\n")
        run = pycell("exec", "--out", out, stdin=code)
        self.assertExit(run, 1)  # The cell was fine; not everything could be saved.
        self.assertIn("not saved: /mnt/data/sub/a.txt", run.err)
        self.assertEqual(os.listdir(outside), [])
        with open(os.path.join(out, "fine.txt")) as f:
            self.assertEqual(f.read(), "fine")

    def test_json_and_keep(self):
        run = pycell("exec", "--json", "--keep", stdin="print('hi')\n1 + 1\n")
        self.assertExit(run, 0)
        record = run.json()
        self.assertEqual(record["object"], "execution")
        self.assertEqual(record["status"], "ok")
        self.assertEqual(record["stdout"], "hi\n")
        self.assertEqual(record["outputs"][0]["data"]["text/plain"], "2")
        self.assertRegex(record["id"], ID_RE["exec_"])
        match = ID_RE["sess_"].search(run.err)
        self.assertIsNotNone(match, run)
        self.assertEqual(match.group(0), record["session_id"])
        self.assertIn(record["session_id"], self.active_sessions())  # Kept.
        run = pycell("exec", "--session", record["session_id"], "--json",
                     stdin="raise KeyError('k')")
        self.assertExit(run, 1)
        self.assertEqual(run.json()["error"]["ename"], "KeyError")
        self.assertExit(pycell("sessions", "rm", record["session_id"], "--json"), 0)


class LineageTest(CliTestCase):
    def test_lineage_of_an_artifact(self):
        data = self.write("in.csv", "n\n1\n2\n")
        run = pycell("exec", "--json", "--file", data,
                     stdin="import pandas as pd\npd.read_csv('in.csv').to_csv('/mnt/data/out.csv')\n")
        self.assertExit(run, 0)
        record = run.json()
        artifact = [a for a in record["artifacts"] if a["filename"] == "out.csv"][0]
        run = pycell("lineage", artifact["id"])
        self.assertExit(run, 0)
        self.assertIn("written by " + record["id"], run.out)
        self.assertIn("from in.csv", run.out)
        run = pycell("lineage", artifact["id"], "--json")
        self.assertExit(run, 0)
        lineage = run.json()
        self.assertEqual(lineage["produced_by"]["execution"]["id"], record["id"])
        self.assertEqual([i["filename"] for i in lineage["produced_by"]["inputs"]], ["in.csv"])
        run = pycell("lineage", "file_00000000000000000000000000")
        self.assertExit(run, 1)
        self.assertIn("not_found", run.err)


class UrlTest(CliTestCase):
    def test_unreachable_server(self):
        for args in (["files", "list"], ["sessions", "list"], ["exec"]):
            run = pycell(*args, "--url", "http://127.0.0.1:1", stdin="1")
            self.assertExit(run, 1)
            self.assertIn("cannot reach a pycell server at http://127.0.0.1:1", run.err)
            self.assertIn("pycell serve", run.err)
        # PYCELL_URL is read when --url is not given; --url wins over it.
        env = client_env(url="http://127.0.0.1:1")
        proc = subprocess.run([PYCELL, "sessions", "list"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(b"http://127.0.0.1:1", proc.stderr)
        proc = subprocess.run([PYCELL, "sessions", "list", "--url", URL], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_not_a_pycell_url(self):
        run = pycell("files", "list", "--url", URL + "/v1")
        self.assertExit(run, 1)
        self.assertIn("(not_found, HTTP 404)", run.err)


# --- keys, projects, audit, usage (docs/access.md) ----------------------------------------------


def rand(stem):
    return "%s-%s" % (stem, os.urandom(3).hex())


class KeysTest(CliTestCase):
    def test_create_use_list_revoke(self):
        principal = rand("alice")
        run = pycell("keys", "create", "--principal", principal)
        self.assertExit(run, 0)
        token = KEY_RE.search(run.out)
        self.assertIsNotNone(token, run)
        token = token.group(0)
        key_id = ID_RE["key_"].search(run.out).group(0)
        self.assertEqual(token[4:30], key_id[4:])  # pyc_<the id's 26 characters>_<secret>
        self.assertIn("shown only this once", run.out)
        self.assertIn("role user, project default", run.out)

        # The new key works for a user's work; the admin key is not needed.
        path = self.write("mine.csv", "a\n1\n")
        run = pycell("files", "upload", path, "--json", key=token)
        self.assertExit(run, 0)
        file_id = run.json()["id"]
        run = pycell("files", "upload", path, "--key", token, key=None)  # --key instead of env.
        self.assertExit(run, 0)
        # …but not for an admin's.
        run = pycell("keys", "list", key=token)
        self.assertExit(run, 1)
        self.assertIn("(permission_denied, HTTP 403)", run.err)

        run = pycell("keys", "list")
        self.assertExit(run, 0)
        self.assertTrue(run.out.startswith("ID "), run)
        self.assertRegex(run.out, re.escape(key_id) + r"\s+" + re.escape(principal) +
                         r"\s+user\s+default\s")
        self.assertNotIn(token, run.out)
        run = pycell("keys", "list", "--project", "default", "--json")
        self.assertExit(run, 0)
        listed = {k["id"]: k for k in run.json()["data"]}
        self.assertEqual(listed[key_id]["principal"], principal)
        self.assertNotIn("key", listed[key_id])  # Never the secret again.

        run = pycell("keys", "revoke", key_id)
        self.assertExit(run, 0)
        self.assertRegex(run.out, r"^revoked %s \(principal %s, role user\) at \S+\n$" %
                         (key_id, re.escape(principal)))
        # Revoked: refused at once, with a clear message and exit 1.
        run = pycell("files", "get", file_id, key=token)
        self.assertExit(run, 1)
        self.assertIn("(unauthenticated, HTTP 401)", run.err)
        self.assertIn("the key sent came from PYCELL_KEY", run.err)
        run = pycell("files", "upload", path, key=token)
        self.assertExit(run, 1)
        self.assertIn("(unauthenticated, HTTP 401)", run.err)
        run = pycell("keys", "list", "--json")
        self.assertNotIn(key_id, {k["id"] for k in run.json()["data"]})
        run = pycell("keys", "list", "--include-revoked", "--json")
        revoked = {k["id"]: k for k in run.json()["data"]}[key_id]
        self.assertIsNotNone(revoked["revoked_at"])

    def test_create_json_roles_and_errors(self):
        run = pycell("keys", "create", "--principal", rand("audit-bot"), "--role", "auditor",
                     "--all-projects", "--json")
        self.assertExit(run, 0)
        key = run.json()
        self.assertEqual(key["object"], "key")
        self.assertEqual(key["role"], "auditor")
        self.assertTrue(key["all_projects"])
        self.assertRegex(key["key"], KEY_RE)
        self.assertRegex(key["id"], ID_RE["key_"])
        # An auditor reads the audit log, and may verify it (it sees every project).
        run = pycell("audit", "verify", key=key["key"])
        self.assertExit(run, 0)
        self.assertExit(pycell("keys", "revoke", key["id"]), 0)
        # An auditor of one project sees only its events, which are no whole chain: verify says
        # so rather than report the gaps as a broken chain.
        run = pycell("keys", "create", "--principal", rand("project-auditor"), "--role",
                     "auditor", "--json")
        self.assertExit(run, 0)
        scoped = run.json()
        self.assertFalse(scoped["all_projects"])
        run = pycell("audit", "verify", key=scoped["key"])
        self.assertExit(run, 1)
        self.assertIn("auditor of one project", run.err)
        self.assertNotIn("BROKEN", run.out)
        run = pycell("audit", "list", "--limit", "1", "--json", key=scoped["key"])
        self.assertExit(run, 0)  # Listing its project's events is fine.
        self.assertExit(pycell("keys", "revoke", scoped["id"]), 0)

        run = pycell("keys", "create", "--principal", "x", "--role", "king")
        self.assertExit(run, 2)
        run = pycell("keys", "create", "--role", "user")
        self.assertExit(run, 2)  # --principal is required.
        run = pycell("keys", "create", "--principal", "x", "--project", "no-such-project")
        self.assertExit(run, 1)
        self.assertIn("not_found", run.err)
        run = pycell("keys", "revoke", "key_" + "0" * 26)
        self.assertExit(run, 1)
        self.assertIn("(not_found, HTTP 404)", run.err)
        run = pycell("keys", "list", "--url", URL, "--data-dir", self.dir)
        self.assertExit(run, 2)  # --data-dir works without a server: not with --url.


class ProjectsTest(CliTestCase):
    def test_create_list_update(self):
        name = rand("finance")
        run = pycell("projects", "create", name, "--max-concurrent-sessions", "2",
                     "--max-storage-bytes", "1g", "--max-cpu-hours-per-day", "1.5", "--json")
        self.assertExit(run, 0)
        project = run.json()
        self.assertRegex(project["id"], ID_RE["proj_"])
        self.assertEqual(project["name"], name)
        self.assertFalse(project["share_sessions"])
        self.assertEqual(project["quotas"]["concurrent_sessions"], 2)
        self.assertEqual(project["quotas"]["storage_bytes"], 1 << 30)
        self.assertEqual(project["quotas"]["cpu_hours_per_day"], 1.5)
        self.assertIsNone(project["quotas"]["sessions_per_day"])

        run = pycell("projects", "list")
        self.assertExit(run, 0)
        self.assertTrue(run.out.startswith("ID "), run)
        self.assertRegex(run.out, re.escape(project["id"]) + r"\s+" + re.escape(name) +
                         r"\s+no\s+2\s+-\s+1\.5\s+1\.0 GiB\s")
        self.assertRegex(run.out, r"proj_0{26}\s+default\s")
        run = pycell("projects", "list", "--json")
        self.assertExit(run, 0)
        self.assertIn(project["id"], {p["id"] for p in run.json()["data"]})

        # By name; 0 lifts a quota.
        run = pycell("projects", "update", name, "--share-sessions", "--max-sessions-per-day",
                     "5", "--max-concurrent-sessions", "0")
        self.assertExit(run, 0)
        self.assertIn("share_sessions: true\n", run.out)
        self.assertIn("quotas: sessions_per_day 5, cpu_hours_per_day 1.5, storage_bytes 1.0 GiB\n",
                      run.out)
        run = pycell("projects", "update", project["id"], "--no-share-sessions", "--json")
        self.assertExit(run, 0)
        updated = run.json()
        self.assertFalse(updated["share_sessions"])
        self.assertEqual(updated["quotas"]["sessions_per_day"], 5)
        self.assertIsNone(updated["quotas"]["concurrent_sessions"])

        # A key in the project.
        run = pycell("keys", "create", "--principal", rand("bob"), "--project", name, "--json")
        self.assertExit(run, 0)
        self.assertEqual(run.json()["project_id"], project["id"])

        run = pycell("projects", "update", name)
        self.assertExit(run, 2)  # Nothing to change.
        run = pycell("projects", "update", name, "--share-sessions", "--no-share-sessions")
        self.assertExit(run, 2)
        run = pycell("projects", "create", name)
        self.assertExit(run, 1)  # Exists already.
        run = pycell("projects", "create", "Not A Name")
        self.assertExit(run, 1)
        self.assertIn("invalid_request", run.err)
        run = pycell("projects", "update", "no-such-project", "--share-sessions")
        self.assertExit(run, 1)
        self.assertIn("not_found", run.err)


class AuditTest(CliTestCase):
    def test_list_shows_the_actions(self):
        run = pycell("files", "upload", self.write("audited.csv", "a\n1\n"), "--json")
        self.assertExit(run, 0)
        file_id = run.json()["id"]
        self.assertExit(pycell("files", "download", file_id, "-o", self.dir + "/back.csv"), 0)
        self.assertExit(pycell("files", "rm", file_id), 0)

        run = pycell("audit", "list", "--target", file_id, "--json")
        self.assertExit(run, 0)
        listed = run.json()
        self.assertEqual(listed["object"], "list")
        events = listed["data"]
        self.assertEqual([e["action"] for e in events],
                         ["file.upload", "file.download", "file.delete"])
        for e in events:
            self.assertEqual(e["principal"], "admin")
            self.assertEqual(e["outcome"], "ok")
            self.assertRegex(e["hash"], r"^[0-9a-f]{64}$")
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, sorted(seqs))

        run = pycell("audit", "list", "--target", file_id)
        self.assertExit(run, 0)
        lines = run.out.splitlines()
        self.assertRegex(lines[0], r"^SEQ\s+TIME\s+PRINCIPAL\s+ACTION\s+TARGET\s+OUTCOME$")
        self.assertEqual(len(lines), 4, run)
        self.assertRegex(lines[1], r"^%d\s+\S+\s+admin\s+file\.upload\s+%s\s+ok$" %
                         (seqs[0], file_id))

        run = pycell("audit", "list", "--action", "file.upload", "--principal", "admin", "--json")
        self.assertExit(run, 0)
        uploads = run.json()["data"]
        self.assertTrue(uploads)
        self.assertEqual({e["action"] for e in uploads}, {"file.upload"})
        self.assertIn(file_id, {e["target"] for e in uploads})
        run = pycell("audit", "list", "--limit", "2", "--json")
        self.assertExit(run, 0)
        self.assertEqual(len(run.json()["data"]), 2)
        self.assertTrue(run.json()["has_more"])
        run = pycell("audit", "list", "--from", "2999-01-01", "--json")
        self.assertExit(run, 0)
        self.assertEqual(run.json()["data"], [])
        # A failed authentication is there too.
        self.assertExit(pycell("files", "list", key="pyc_" + "0" * 26 + "_" + "0" * 32), 1)
        run = pycell("audit", "list", "--action", "auth.denied", "--json")
        self.assertExit(run, 0)
        self.assertTrue(run.json()["data"], run)

    def test_verify_and_export(self):
        run = pycell("audit", "verify")
        self.assertExit(run, 0)
        match = re.match(r"^audit chain verified: (\d+) events, last hash ([0-9a-f]{64})\n$",
                         run.out)
        self.assertIsNotNone(match, run)
        self.assertGreater(int(match.group(1)), 0)
        run = pycell("audit", "verify", "--json")
        self.assertExit(run, 0)
        self.assertTrue(run.json()["verified"])

        out = os.path.join(self.dir, "audit.jsonl")
        run = pycell("audit", "export", "--out", out)
        self.assertExit(run, 0)
        with open(out) as f:
            events = [json.loads(line) for line in f]
        self.assertGreaterEqual(len(events), int(match.group(1)))
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        self.assertEqual(events[0]["prev_hash"], "0" * 64)
        for before, after in zip(events, events[1:]):
            self.assertEqual(after["prev_hash"], before["hash"])
        run = pycell("audit", "export")
        self.assertExit(run, 0)
        self.assertEqual(run.json_lines()[:len(events)], events)

    def test_a_user_key_cannot_read_it(self):
        run = pycell("keys", "create", "--principal", rand("carol"), "--json")
        self.assertExit(run, 0)
        token = run.json()["key"]
        for args in (["audit", "list"], ["audit", "verify"], ["usage"]):
            run = pycell(*args, key=token)
            self.assertExit(run, 1)
            self.assertIn("(permission_denied, HTTP 403)", run.err)


class UsageTest(CliTestCase):
    FIELDS = ["sessions", "session_seconds", "executions", "cpu_seconds", "peak_memory_bytes",
              "bytes_uploaded", "bytes_downloaded", "storage_byte_hours"]

    def test_json_csv_and_table(self):
        self.assertExit(pycell("exec", stdin="sum(range(10**6))"), 0)
        run = pycell("usage", "--json")
        self.assertExit(run, 0)
        report = run.json()
        self.assertEqual(report["object"], "usage")
        self.assertEqual(report["group_by"], "project")
        rows = {r["key"]: r for r in report["data"]}
        self.assertIn("proj_" + "0" * 26, rows, report)  # Grouped by project id.
        for row in report["data"] + [report["total"]]:
            for field in self.FIELDS:
                self.assertIsInstance(row[field], (int, float), (field, row))
            self.assertIn("total", row["cost"])
        self.assertGreaterEqual(report["total"]["sessions"], 1)
        self.assertGreaterEqual(report["total"]["executions"], 1)

        run = pycell("usage", "--csv")
        self.assertExit(run, 0)
        lines = run.out.splitlines()
        self.assertEqual(lines[0].split(","), ["key"] + self.FIELDS + [
            "cost_sessions", "cost_cpu", "cost_storage", "cost_transfer", "cost_total"])
        self.assertEqual(len(lines), 1 + len(report["data"]), run)
        for line in lines[1:]:
            cells = line.split(",")
            self.assertEqual(len(cells), 14, line)
            for cell in cells[1:]:
                float(cell)

        run = pycell("usage")
        self.assertExit(run, 0)
        self.assertRegex(run.out, r"\nPROJECT\s+SESSIONS\s.*\ndefault\s+\d+\s")  # Named.
        run = pycell("usage", "--group-by", "principal")
        self.assertExit(run, 0)
        self.assertRegex(run.out, r"\nPRINCIPAL\s+SESSIONS\s+SESSION H\s+EXECUTIONS\s")
        self.assertRegex(run.out, r"\nadmin\s+\d+\s")
        self.assertRegex(run.out, r"\nTOTAL\s+\d+\s")
        run = pycell("usage", "--group-by", "day", "--from", "2000-01-01", "--json")
        self.assertExit(run, 0)
        self.assertEqual(run.json()["group_by"], "day")
        self.assertExit(pycell("usage", "--group-by", "colour"), 2)
        self.assertExit(pycell("usage", "--json", "--csv"), 2)


class ShowAndConfigTest(CliTestCase):
    """pycell show, config check and config diff against the module's server."""

    def live_toml(self, memory="2g"):
        """A file saying what the module's server runs with (its flags, and the defaults)."""
        return self.write("expected.toml", """
[server]
listen = "127.0.0.1:0"
data_dir = "%s"
[engine]
runtime_dir = "%s"
[[pools]]
name = "default"
ready_sessions = 1
[pools.limits]
memory = "%s"
""" % (SERVER.data_dir, RUNTIME_DIR, memory))

    def test_show(self):
        run = pycell("show", "--json")
        self.assertExit(run, 0)
        info = json.loads(run.out)
        self.assertEqual(info["object"], "service")
        self.assertRegex(info["version"], r"^\d+\.\d+\.\d+$")
        self.assertRegex(info["build"]["commit"], r"^([0-9a-f]{12}(-dirty)?|unknown)$")
        self.assertEqual(info["data_dir"], os.path.abspath(SERVER.data_dir))
        self.assertEqual(info["store"]["backend"], "sqlite")
        self.assertGreaterEqual(info["store"]["schema_version"], 3)
        self.assertGreaterEqual(info["keys_by_role"]["admin"], 1)
        self.assertTrue(all(p["available"] for p in info["host_protections"]), info)
        self.assertEqual([p["name"] for p in info["pools"]], ["default"])
        self.assertNotIn(SERVER.admin_key, run.out)  # No secret in it.
        run = pycell("show")
        self.assertExit(run, 0)
        self.assertIn("Host protections:", run.out)
        self.assertRegex(run.out, r"keys\s+admin \d+")
        # An operator may look; a user may not.
        user = pycell("keys", "create", "--principal", "show-user", "--json").json()["key"]
        self.assertExit(pycell("show", key=user), 1)

    def test_config_check(self):
        self.assertExit(pycell("config", "check", self.live_toml(), url=None, key=None), 0)
        bad = self.write("bad.toml", "[[pools]]\nname = \"a\"\n[pools.limits]\nmemroy = \"1g\"\n")
        run = pycell("config", "check", bad, url=None, key=None)
        self.assertExit(run, 1)
        self.assertIn("pools[0].limits.memroy", run.err)

    def test_config_diff_finds_a_changed_limit(self):
        run = pycell("config", "diff", self.live_toml())
        self.assertExit(run, 0)
        self.assertIn("matches", run.out)
        run = pycell("config", "diff", self.live_toml(memory="1g"))
        self.assertExit(run, 1)
        self.assertIn("pools[0].limits.memory_bytes: expected 1073741824, live 2147483648",
                      run.out)
        run = pycell("config", "diff", self.live_toml(memory="1g"), "--json")
        self.assertExit(run, 1)
        report = json.loads(run.out)
        self.assertFalse(report["equal"])
        self.assertEqual([d["key"] for d in report["differences"]],
                         ["pools[0].limits.memory_bytes"])


class KeySourceTest(CliTestCase):
    """--key, then PYCELL_KEY, then the admin.key of --data-dir, $PYCELL_DATA_DIR, ./var,
    /var/lib/pycell."""

    def test_admin_key_file(self):
        # ./var/admin.key of the working folder.
        var = os.path.join(self.dir, "var")
        os.makedirs(var)
        with open(os.path.join(var, "admin.key"), "w") as f:
            f.write(SERVER.admin_key + "\n")
        run = pycell("files", "list", key=None, cwd=self.dir)
        self.assertExit(run, 0)
        # $PYCELL_DATA_DIR: the server's own data dir.
        run = pycell("sessions", "list", key=None, env={"PYCELL_DATA_DIR": SERVER.data_dir})
        self.assertExit(run, 0)
        # PYCELL_KEY wins over the file, and --key over PYCELL_KEY.
        wrong = "pyc_" + "1" * 26 + "_" + "1" * 32
        run = pycell("files", "list", key=wrong, cwd=self.dir)
        self.assertExit(run, 1)
        self.assertIn("(unauthenticated, HTTP 401)", run.err)
        run = pycell("files", "list", "--key", SERVER.admin_key, key=wrong)
        self.assertExit(run, 0)

    def test_no_key_is_a_clear_401(self):
        if os.access("/var/lib/pycell/admin.key", os.R_OK):
            self.skipTest("/var/lib/pycell/admin.key exists on this machine")
        for args in (["files", "list"], ["sessions", "list"], ["keys", "list"]):
            run = pycell(*args, key=None)
            self.assertExit(run, 1)
            self.assertIn("(unauthenticated, HTTP 401)", run.err)
            self.assertIn("no key was sent", run.err)
            self.assertIn("PYCELL_KEY", run.err)
        run = pycell("exec", key=None, stdin="1")
        self.assertExit(run, 1)
        self.assertIn("(unauthenticated, HTTP 401)", run.err)


class DataDirTest(CliTestCase):
    """keys, projects and audit on a data dir directly, with its server stopped; and a log
    tampered with in SQLite is caught by `audit verify --data-dir`."""

    def test_stopped_server(self):
        data = os.path.join(WORK_DIR, "stopped-data")
        os.makedirs(data)
        server = pycell_server.ServeProcess(PYCELL, data, DATA_DIR_RUNTIME_DIR,
                                            os.path.join(WORK_DIR, "stopped-server.log"))
        server.start()
        try:
            url = server.url()
            path = self.write("before.csv", "a\n1\n")
            run = pycell("files", "upload", path, "--url", url, "--key", server.admin_key)
            self.assertExit(run, 0)
            self.assertEqual(server.stop(), 0, server.log_tail())
            self.offline_work(server, data, url, path)
        finally:
            if server.proc.poll() is None:
                server.kill()

    def offline_work(self, server, data, url, path):
        # No server: the API answers nothing…
        run = pycell("keys", "list", "--url", url, key=server.admin_key)
        self.assertExit(run, 1)
        self.assertIn("cannot reach", run.err)
        # …but the data dir does.
        run = pycell("keys", "create", "--principal", "offline", "--data-dir", data, "--json",
                     url=None, key=None)
        self.assertExit(run, 0)
        made = run.json()
        self.assertRegex(made["key"], KEY_RE)
        self.assertEqual(made["principal"], "offline")
        run = pycell("keys", "create", "--principal", "offline2", "--data-dir", data,
                     url=None, key=None)
        self.assertExit(run, 0)
        self.assertIn("shown only this once", run.out)
        run = pycell("keys", "list", "--data-dir", data, url=None, key=None)
        self.assertExit(run, 0)
        self.assertRegex(run.out, re.escape(made["id"]) + r"\s+offline\s+user\s+default\s")
        self.assertRegex(run.out, r"\s+admin\s+admin\s+default\s")
        run = pycell("projects", "create", "offline-team", "--max-sessions-per-day", "3",
                     "--data-dir", data, url=None, key=None)
        self.assertExit(run, 0)
        self.assertIn("name: offline-team\n", run.out)
        run = pycell("projects", "update", "offline-team", "--share-sessions", "--data-dir", data,
                     "--json", url=None, key=None)
        self.assertExit(run, 0)
        self.assertTrue(run.json()["share_sessions"])
        run = pycell("projects", "list", "--data-dir", data, "--json", url=None, key=None)
        self.assertExit(run, 0)
        self.assertEqual(sorted(p["name"] for p in run.json()["data"]),
                         ["default", "offline-team"])
        revoked = pycell("keys", "create", "--principal", "gone", "--data-dir", data, "--json",
                         url=None, key=None).json()
        run = pycell("keys", "revoke", revoked["id"], "--data-dir", data, url=None, key=None)
        self.assertExit(run, 0)

        # The changes are audited, by the local administrator.
        run = pycell("audit", "list", "--action", "key.create", "--data-dir", data, "--json",
                     url=None, key=None)
        self.assertExit(run, 0)
        local = [e for e in run.json()["data"] if e["target"] == made["id"]]
        self.assertEqual(len(local), 1, run)
        self.assertTrue(local[0]["principal"].startswith("local:"), local[0])
        run = pycell("audit", "verify", "--data-dir", data, url=None, key=None)
        self.assertExit(run, 0)
        count = int(re.match(r"^audit chain verified: (\d+) events", run.out).group(1))
        run = pycell("audit", "export", "--data-dir", data, url=None, key=None)
        self.assertExit(run, 0)
        exported = run.json_lines()
        self.assertEqual(len(exported), count)
        self.assertEqual({"file.upload", "key.create", "key.revoke", "project.create",
                          "project.update"} - {e["action"] for e in exported}, set())
        run = pycell("audit", "verify", "--data-dir", os.path.join(self.dir, "nothing-here"),
                     url=None, key=None)
        self.assertExit(run, 1)
        self.assertIn("no pycell database", run.err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "nothing-here")))

        # Restarted, the server takes the key made offline, and refuses the revoked one.
        server.start()
        run = pycell("files", "upload", path, "--url", server.url(), "--key", made["key"],
                     key=None)
        self.assertExit(run, 0)
        run = pycell("files", "list", "--url", server.url(), "--key", revoked["key"], key=None)
        self.assertExit(run, 1)
        self.assertIn("(unauthenticated, HTTP 401)", run.err)
        run = pycell("audit", "verify", "--url", server.url(), key=server.admin_key)
        self.assertExit(run, 0)
        self.assertEqual(server.stop(), 0, server.log_tail())

        self.tamper(data)

    def tamper(self, data):
        def verify():
            return pycell("audit", "verify", "--data-dir", data, url=None, key=None)

        run = verify()
        self.assertExit(run, 0)
        db = sqlite3.connect(os.path.join(data, "pycell.db"))
        try:
            # Append-only: the triggers refuse changes…
            with self.assertRaises(sqlite3.DatabaseError):
                with db:
                    db.execute("UPDATE audit_events SET principal = 'x' WHERE seq = 1")
            # …so a forger drops them first; the chain still tells.
            with db:
                db.execute("DROP TRIGGER audit_events_no_update")
                db.execute("DROP TRIGGER audit_events_no_delete")
            seq, event_id, principal = db.execute(
                "SELECT seq, id, principal FROM audit_events ORDER BY seq LIMIT 1 OFFSET 2"
            ).fetchone()
            forged = chr(ord(principal[0]) ^ 1) + principal[1:]  # One byte changed.
            with db:
                db.execute("UPDATE audit_events SET principal = ? WHERE seq = ?", (forged, seq))
            run = verify()
            self.assertExit(run, 1)
            self.assertRegex(run.out, r"^audit chain BROKEN at event %d \(%s\): .*hash" %
                             (seq, re.escape(event_id)))
            run = pycell("audit", "verify", "--data-dir", data, "--json", url=None, key=None)
            self.assertExit(run, 1)
            self.assertEqual((run.json()["verified"], run.json()["seq"]), (False, seq))

            # Put back, it verifies again; a deleted event is named too.
            with db:
                db.execute("UPDATE audit_events SET principal = ? WHERE seq = ?", (principal, seq))
            self.assertExit(verify(), 0)
            with db:
                db.execute("DELETE FROM audit_events WHERE seq = ?", (seq + 1,))
            run = verify()
            self.assertExit(run, 1)
            self.assertRegex(run.out, r"^audit chain BROKEN at event %d \(" % (seq + 1))
        finally:
            db.close()


def main():
    global PYCELL
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()

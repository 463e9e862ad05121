#!/usr/bin/python3
"""The `pycell` client commands (files, sessions, exec) against a real `pycell serve`.

Usage:
  test_cli.py --pycell PATH [unittest arguments, e.g. -v or -k Exec]

One server runs for the whole module: port 0, a temporary data dir, stopped with SIGTERM at the
end. Every test runs the client binary as a person or a script would (PYCELL_URL in the
environment, or --url) and checks its exit code, its stdout and stderr, and the files it wrote.
One test talks to a fake server (http.server) that lies about a file's SHA-256.

Only the standard library.
"""

import argparse
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
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
ID_RE = {p: re.compile(p + "[0-9a-zA-Z]{26}") for p in ("file_", "sess_", "exec_")}
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


def pycell(*args, stdin=None, cwd=None, url=True, timeout=180):
    """Runs the client with PYCELL_URL pointing at the module's server (unless url=False)."""
    env = dict(os.environ)
    env.pop("PYCELL_URL", None)
    if url:
        env["PYCELL_URL"] = URL
    proc = subprocess.run([PYCELL] + list(args), input=stdin.encode() if stdin else b"",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env,
                          timeout=timeout)
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
        self.assertIn("  owner: cli-test\n", run.out)

        # The placed file is there.
        run = pycell("exec", "--session", sid, stdin="print(open('/mnt/data/in.csv').read())")
        self.assertExit(run, 0)
        self.assertEqual(run.out, "x\n1\n\n")

        self.assertIn(sid, self.active_sessions())
        run = pycell("sessions", "list")
        self.assertExit(run, 0)
        self.assertRegex(run.out, re.escape(sid) + r"\s+active\s+default\s+1\s")

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
        env = dict(os.environ, PYCELL_URL=URL)
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
        env = dict(os.environ, PYCELL_URL=URL)
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
        env = dict(os.environ, PYCELL_URL="http://127.0.0.1:1")
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


def main():
    global PYCELL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pycell", required=True, help="the pycell binary")
    args, rest = parser.parse_known_args()
    PYCELL = os.path.abspath(args.pycell)
    if not os.access(PYCELL, os.X_OK):
        parser.error("%s is not an executable" % PYCELL)
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()

"""`pycell serve` as a child process for black-box tests (tests/api, tests/cli), and the HTTP
client those tests talk to it with.

ServeProcess starts the real server on a free port (port 0) with a given data dir, reads the
port from its listening line, waits for /readyz, reads the admin key the server wrote at its first
start (`<data_dir>/admin.key`, docs/access.md), and stops it with SIGTERM (or SIGKILL). Its stdout
is read by a thread (for the listening and stopped lines); stderr (the log) goes to a file that
log_tail() shows when something fails.

Client sends each request on a fresh connection, with `Authorization: Bearer <key>` when it has a
key. Standard library only.
"""

import argparse
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

LISTENING_RE = re.compile(r"^pycell serve: listening on http://(\S+):(\d+) \(data (.*)\)$")
STOPPED_LINE = "pycell serve: stopped"
ADMIN_KEY_FILE = "admin.key"
# pyc_<26 characters: the key's id>_<32 characters: the secret>, Crockford base32.
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
BASE32 = "[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]"
KEY_RE = re.compile(r"^pyc_(%s{26})_(%s{32})$" % (BASE32, BASE32))


class ServeProcess:
    """One `pycell serve` process: stdout is read by a thread (for the listening and stopped
    lines), stderr (the log) goes to a file shown when something fails."""

    def __init__(self, pycell, data_dir, runtime_dir, log_path):
        self.pycell = pycell
        self.data_dir = data_dir
        self.runtime_dir = runtime_dir
        self.log_path = log_path
        self.proc = None
        self.host = None
        self.port = None
        self.admin_key = None  # From <data_dir>/admin.key once start() returns.
        self.stdout_lines = []
        self._lines_cv = threading.Condition()
        self._reader = None

    @classmethod
    def in_new_folder(cls, pycell, prefix, runtime_dir):
        """A server whose data dir and log live in a new temporary folder: (server, folder)."""
        folder = tempfile.mkdtemp(prefix=prefix)
        data_dir = os.path.join(folder, "data")
        os.makedirs(data_dir)
        return cls(pycell, data_dir, runtime_dir, os.path.join(folder, "server.log")), folder

    def start(self, listen_timeout=60, ready_timeout=120, extra_args=(), ready_sessions=1,
              env=None):
        """Starts the server and returns once /readyz says 200; host, port and admin_key are
        then set. ready_sessions=None leaves the pools' ready sessions to the configuration;
        `env` adds variables to the server's environment (e.g. LD_PRELOAD)."""
        log = open(self.log_path, "ab")
        self.stdout_lines = []
        self.proc = subprocess.Popen(
            [self.pycell, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir,
             "--runtime-dir", self.runtime_dir,
             *(("--ready-sessions", str(ready_sessions)) if ready_sessions is not None else ()),
             *extra_args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            env=dict(os.environ, **env) if env else None)
        log.close()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + listen_timeout
        match = None
        with self._lines_cv:
            while match is None:
                for line in self.stdout_lines:
                    match = LISTENING_RE.match(line)
                    if match:
                        break
                if match:
                    break
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError("pycell serve printed no listening line within %d s "
                                       "(exit %s)\nstdout: %r\n%s" %
                                       (listen_timeout, self.proc.poll(), self.stdout_lines,
                                        self.log_tail()))
                self._lines_cv.wait(min(left, 0.2))
        self.host, self.port = match.group(1), int(match.group(2))
        if os.path.realpath(match.group(3)) != os.path.realpath(self.data_dir):
            raise RuntimeError("the listening line names data dir %r, not %r" %
                               (match.group(3), self.data_dir))
        url = "http://%s:%d/readyz" % (self.host, self.port)
        deadline = time.monotonic() + ready_timeout
        while True:
            status, retry_after = None, None
            try:
                with urllib.request.urlopen(url, timeout=5) as reply:
                    status = reply.status
            except urllib.error.HTTPError as e:
                status, retry_after = e.code, e.headers.get("Retry-After")
            except OSError:
                pass
            if status == 200:
                self.admin_key = self.read_admin_key()
                return
            if status is not None and (status != 503 or not retry_after):
                raise RuntimeError("GET /readyz while the pool fills: want 200, or 503 with "
                                   "Retry-After; got %s" % status)
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("GET /readyz was not 200 within %d s (exit %s)\n%s" %
                                   (ready_timeout, self.proc.poll(), self.log_tail()))
            time.sleep(0.1)

    def read_admin_key(self):
        """The bootstrap admin key the server wrote to <data_dir>/admin.key (one line)."""
        path = os.path.join(self.data_dir, ADMIN_KEY_FILE)
        try:
            with open(path) as f:
                key = f.read().strip()
        except OSError as e:
            raise RuntimeError("the server is ready but wrote no admin key to %s (%s); "
                               "docs/access.md: the first start creates it\n%s" %
                               (path, e, self.log_tail()))
        if not KEY_RE.match(key):
            raise RuntimeError("%s does not hold one pyc_<id>_<secret> key: %r" % (path, key))
        return key

    def client(self, key=None):
        """A Client of this server with `key` (the admin key by default)."""
        return Client(self.host, self.port, key if key is not None else self.admin_key)

    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def _read_stdout(self):
        for raw in self.proc.stdout:
            with self._lines_cv:
                self.stdout_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._lines_cv.notify_all()

    def internal_errors(self):
        """pycell_internal_errors_total from a scrape of /metrics (the sum over every `where`), or
        None when it cannot be read (no admin key, the server gone)."""
        if not self.admin_key or self.proc is None or self.proc.poll() is not None:
            return None
        try:
            reply = self.client(self.admin_key).get("/metrics", timeout=30)
        except OSError:
            return None
        if reply.status != 200:
            return None
        total = 0.0
        for line in reply.body.decode("utf-8", "replace").splitlines():
            if line.startswith("pycell_internal_errors_total"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, timeout=60, check_internal_errors=True):
        """SIGTERM; the exit code (None if it did not exit within `timeout`). First, unless told
        not to, the server's pycell_internal_errors_total must be 0: a catch at the top of a
        connection or a loop keeps the process alive through a bug, and this makes the bug fail
        the test that met it (AssertionError, after the server has stopped)."""
        errors = self.internal_errors() if check_internal_errors else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._reader.join(10)
        self.proc.stdout.close()
        if errors:
            raise AssertionError("the server counted %d internal error(s) "
                                 "(pycell_internal_errors_total): bugs its catches survived\n%s" %
                                 (errors, self.log_tail(60)))
        return rc

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(10)
        self.proc.stdout.close()

    def last_stdout_line(self):
        lines = [l for l in self.stdout_lines if l.strip()]
        return lines[-1] if lines else None

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        tail = "\n".join(text.splitlines()[-lines:])
        return "--- server log (last %d lines) ---\n%s" % (lines, tail)


# --- HTTP ------------------------------------------------------------------------------------


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # Lower-case names.
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "HTTP %d %r" % (self.status, self.body[:600])


def headers_of(response):
    return {k.lower(): v for k, v in response.getheaders()}


class Client:
    """Requests to one server, each on a fresh connection, with `Authorization: Bearer <key>`
    when `key` is set (a header given to a call overrides it)."""

    def __init__(self, host, port, key=None):
        self.host = host
        self.port = port
        self.key = key

    def with_key(self, key):
        """The same server with another key (None: no Authorization header)."""
        return Client(self.host, self.port, key)

    def auth_headers(self):
        return {"Authorization": "Bearer " + self.key} if self.key else {}

    def auth_line(self):
        """The Authorization header line (with its CRLF) for requests built by hand, or b""."""
        return ("Authorization: Bearer %s\r\n" % self.key).encode() if self.key else b""

    def connection(self, timeout=120):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=120):
        h = self.auth_headers()
        h.update(headers or {})
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            response = conn.getresponse()
            data = response.read()
            return Reply(response.status, headers_of(response), data)
        finally:
            conn.close()

    def get(self, path, headers=None, timeout=120):
        return self.request("GET", path, headers=headers, timeout=timeout)

    def delete(self, path):
        return self.request("DELETE", path)

    def post_json(self, path, obj=None, raw=None, headers=None, timeout=120):
        body = raw if raw is not None else (None if obj is None else json.dumps(obj).encode())
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return self.request("POST", path, body=body, headers=h, timeout=timeout)

    def patch_json(self, path, obj):
        return self.request("PATCH", path, body=json.dumps(obj).encode(),
                            headers={"Content-Type": "application/json"})

    def upload_raw(self, filename, data, path="/v1/files"):
        query = "" if filename is None else "?filename=" + urllib.parse.quote(filename, safe="")
        return self.request("POST", path + query, body=data,
                            headers={"Content-Type": "application/octet-stream"})

    def upload_multipart(self, filename, data, path="/v1/files", extra_fields=()):
        body, content_type = multipart_body(
            list(extra_fields) + [("file", filename, "application/octet-stream", data)])
        return self.request("POST", path, body=body, headers={"Content-Type": content_type})

    def raw_exchange(self, data, method="POST", timeout=30):
        """Sends `data` (a request head, perhaps without its body) on a fresh socket and parses
        the answer. `data` is sent as given: add auth_line() to it where the route needs a key."""
        sock = socket.create_connection((self.host, self.port), timeout)
        try:
            sock.sendall(data)
            response = http.client.HTTPResponse(sock, method=method)
            response.begin()
            body = response.read()
            return Reply(response.status, headers_of(response), body)
        finally:
            sock.close()

    def execute(self, session_id, code, timeout_s=None, timeout=180):
        body = {"code": code}
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        return self.post_json("/v1/sessions/%s/executions" % session_id, body, timeout=timeout)

    def create_session(self, **body):
        return self.post_json("/v1/sessions", body)

    def all_files(self, query=""):
        reply = self.get("/v1/files?limit=1000" + query)
        assert reply.status == 200, reply
        return reply.json()["data"]


def multipart_body(parts, boundary=None, close=True):
    """parts: (name, filename or None, content type or None, data); names and filenames may be
    str or bytes (bytes go out exactly as given)."""
    boundary = boundary or "----pycell-api-test-" + os.urandom(8).hex()

    def b(x):
        return x if isinstance(x, bytes) else x.encode("utf-8")

    out = io.BytesIO()
    for name, filename, content_type, data in parts:
        out.write(b"--" + b(boundary) + b"\r\n")
        disposition = b'Content-Disposition: form-data; name="' + b(name) + b'"'
        if filename is not None:
            disposition += b'; filename="' + b(filename) + b'"'
        out.write(disposition + b"\r\n")
        if content_type:
            out.write(b"Content-Type: " + b(content_type) + b"\r\n")
        out.write(b"\r\n" + b(data) + b"\r\n")
    if close:
        out.write(b"--" + b(boundary) + b"--\r\n")
    return out.getvalue(), "multipart/form-data; boundary=" + boundary


# --- processes, from /proc: what tests that kill or count a server's processes share ---


def process_start(pid):
    """The process's start time in clock ticks (to tell a reused pid), or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def parent_map():
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    return children


def descendants(root):
    """(pid, start time) of every process under `root`."""
    children = parent_map()
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            start = process_start(child)
            if start is not None:
                found.append((child, start))
                todo.append(child)
    return found


def alive(process):
    pid, start = process
    return process_start(pid) == start and not is_zombie(pid)


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def describe(process):
    pid = process[0]
    try:
        with open("/proc/%d/status" % pid) as f:
            uid = next(line.split()[1] for line in f if line.startswith("Uid:"))
    except (OSError, StopIteration):
        return "pid %d (gone)" % pid
    return "pid %d uid %s: %s" % (pid, uid, cmdline(pid))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def unique(stem, extension):
    return "%s-%s.%s" % (stem, os.urandom(4).hex(), extension)


class HttpAssertions:
    """assertError for unittest.TestCase subclasses: the error body of docs/access.md and the
    README, `{"error": {"code", "message"}}` with the status."""

    def assertError(self, reply, status, code, message_contains=None):
        self.assertEqual(reply.status, status, reply)
        self.assertTrue((reply.header("content-type") or "").startswith("application/json"), reply)
        body = reply.json()
        self.assertIn("error", body, reply)
        self.assertEqual(body["error"].get("code"), code, reply)
        message = body["error"].get("message")
        self.assertIsInstance(message, str, reply)
        self.assertTrue(message.strip(), reply)
        if message_contains is not None:
            self.assertIn(message_contains, message, reply)
        return body["error"]


def run_pycell(pycell, args, cwd, timeout=180):
    """`pycell ARGS` in `cwd` with no PYCELL_* variables from the environment: (exit code,
    stdout, stderr) as text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCELL_")}
    proc = subprocess.run([pycell, *args], capture_output=True, timeout=timeout, env=env, cwd=cwd)
    return (proc.returncode, proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"))


def expect(reply, status, what):
    """The JSON body of `reply` (None when it is not JSON); AssertionError naming `what` unless
    the status is `status`."""
    if reply.status != status:
        raise AssertionError("%s: want HTTP %d, got %r" % (what, status, reply))
    if (reply.header("content-type") or "").startswith("application/json"):
        return reply.json()
    return None


def create_key(admin, principal, project, role):
    """A new key (the secret) made with the `admin` client."""
    created = expect(admin.post_json("/v1/keys", {"principal": principal, "project": project,
                                                  "role": role}),
                     201, "POST /v1/keys (%s)" % role)
    return created["key"]


def start_for_module(server, setup, **start_args):
    """setUpModule's body: starts `server` (ServeProcess.start's arguments), then runs `setup()`
    (the module's workload) and returns what it returns. On any failure the server's log is shown
    and the server killed before the error goes on."""
    try:
        server.start(**start_args)
        return setup()
    except BaseException:
        if server.proc is not None:
            print(server.log_tail(60), file=sys.stderr)
            if server.proc.poll() is None:
                server.kill()
        raise


def stop_for_module(server, work_dir):
    """tearDownModule's body: the server must exit 0 after SIGTERM; `work_dir` is removed unless
    PYCELL_API_KEEP is set (to look at what a failed run left)."""
    try:
        if server is None or server.proc is None or server.proc.poll() is not None:
            return
        rc = server.stop(timeout=60)
        if rc != 0:
            raise AssertionError("after SIGTERM the server exited %s (want 0)\n%s" %
                                 (rc, server.log_tail()))
    finally:
        if work_dir and os.environ.get("PYCELL_API_KEEP") is None:
            shutil.rmtree(work_dir, ignore_errors=True)


def parse_pycell_argument(doc):
    """The absolute path of the binary given as --pycell (exits with usage when it is not an
    executable) and the remaining arguments, for unittest."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--pycell", required=True, help="the pycell binary")
    args, rest = parser.parse_known_args()
    pycell = os.path.abspath(args.pycell)
    if not os.access(pycell, os.X_OK):
        parser.error("%s is not an executable" % pycell)
    return pycell, rest

"""The peers bench/compare drives, each behind the same small interface.

A Peer starts what it needs once (start/stop: a server, or nothing), opens sessions
(new_session() -> a Session whose run(code) returns the text of the last expression's value, and
close()), runs the shipment scenario end to end (scenario(csv_bytes) -> the chart's PNG bytes) and
says which processes its sessions cost (memory_root() for a server whose whole process tree is
weighed before and after, else each Session's pids()).

  Pycell        pycell serve over its REST API (/v1), one keep-alive HTTP connection.
  JupyterKernel a kernel started by jupyter_client's KernelManager, BlockingKernelClient (ZeroMQ).
  JupyterServer Jupyter Server's REST API (/api/kernels, /api/contents, /files) and a kernel's
                websocket (/api/kernels/{id}/channels), through tornado's websocket client.
  Sandboxed     a cold python3 inside gVisor (`runsc do`), bubblewrap (`bwrap`) or nothing,
                running repl.py (IPython's InteractiveShell behind a JSON-lines pipe).

Every peer runs its cells in IPython, so the interpreter's work per cell is alike; what differs is
the transport, the isolation, and what is ready before the first cell.
"""

import asyncio
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import procmem
import shipments

HERE = os.path.dirname(os.path.abspath(__file__))

# Every peer's processes run in a session of their own (setsid). The kernel's autogroup
# scheduling (/proc/sys/kernel/sched_autogroup_enabled) shares the CPU of a loaded machine among
# sessions first: jupyter_client starts each kernel in a new session anyway, so a peer left in
# the benchmark's session would get a smaller share than one in its own.
OWN_SESSION = {"start_new_session": True}

PYTHON = "/usr/bin/python3"  # Debian's, with the data stack; not whatever is first on the PATH.
# What pycell's zygote has imported before a session exists (pools.preload). The other peers
# import it in a cell when a figure should compare like with like.
PRELOAD = "import numpy, pandas, matplotlib, matplotlib.pyplot"


class BenchError(RuntimeError):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpConnection:
    """One keep-alive HTTP/1.1 connection with fixed headers (the key or token)."""

    def __init__(self, port, headers):
        self.port = port
        self.headers = headers
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def request(self, method, path, body=None, content_type="application/json", expect=(200,)):
        headers = dict(self.headers)
        if body is not None:
            if not isinstance(body, bytes):  # One bytes body: http.client sends it with the head.
                body = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            self.conn.request(method, path, body=body, headers=headers)
            reply = self.conn.getresponse()
            data = reply.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # A closed keep-alive connection: one fresh try.
            self.conn.request(method, path, body=body, headers=headers)
            reply = self.conn.getresponse()
            data = reply.read()
        if reply.status not in expect:
            raise BenchError("%s %s: HTTP %d: %s" % (method, path, reply.status, data[:400]))
        return data

    def json(self, method, path, body=None, expect=(200,)):
        data = self.request(method, path, body, expect=expect)
        return json.loads(data) if data else None

    def close(self):
        self.conn.close()


# ---------------------------------------------------------------------------------------------
# pycell


class PycellSession:
    def __init__(self, peer, session_id):
        self.peer = peer
        self.id = session_id

    def execute(self, code, timeout_s=None):
        body = {"code": code}
        if timeout_s:
            body["timeout_s"] = timeout_s
        record = self.peer.http.json("POST", "/v1/sessions/%s/executions" % self.id, body)
        if record["status"] != "ok":
            raise BenchError("pycell cell failed: %s" % json.dumps(record)[:800])
        return record

    def run(self, code):
        for output in self.execute(code)["outputs"]:
            if output.get("output_type") == "execute_result":
                return output["data"].get("text/plain")
        return None

    def close(self):
        self.peer.http.request("DELETE", "/v1/sessions/" + self.id)

    def pids(self):
        return None  # Weighed as the server's tree grows: see Pycell.memory_root.


class Pycell:
    """pycell serve with its default pool (ready_sessions warm sessions, numpy, pandas,
    matplotlib and IPython preloaded by the zygote)."""

    def __init__(self, binary, ready_sessions=2, key="pycell", label=None):
        self.binary = os.path.abspath(binary)
        self.ready_sessions = ready_sessions
        self.key = key
        self.label = label or "pycell"
        self.server = None
        self.folder = None
        self.http = None
        self.port = None

    LISTENING = re.compile(r"^pycell serve: listening on http://127\.0\.0\.1:(\d+) ")

    def start(self):
        """`pycell serve` on a free loopback port with a new data dir; returns once /readyz
        says the pool is full. The admin key is the one it wrote at its first start."""
        self.folder = tempfile.mkdtemp(prefix="pycell-compare-")
        data_dir = os.path.join(self.folder, "data")
        self.log_path = os.path.join(self.folder, "server.log")
        with open(self.log_path, "wb") as log:
            self.server = subprocess.Popen(
                [self.binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
                 "--runtime-dir", self.runtime_dir(),
                 "--ready-sessions", str(self.ready_sessions)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, **OWN_SESSION)
        line = self.server.stdout.readline().decode(errors="replace")
        match = self.LISTENING.match(line)
        if not match:
            self.stop()
            raise BenchError("pycell serve printed %r, not its listening line; log: %s" %
                             (line, self.log_path))
        self.port = int(match.group(1))
        # Its stdout is read no further: it writes only its stopped line there.
        self.wait_pool_full(timeout=180)
        with open(os.path.join(data_dir, "admin.key")) as f:
            self.http = HttpConnection(self.port, {"Authorization": "Bearer " + f.read().strip()})

    def stop(self):
        if self.http:
            self.http.close()
        if self.server and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(90)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
        for folder in (os.path.join(self.runtime_dir(), "sessions"), self.runtime_dir()):
            try:
                os.rmdir(folder)  # Only if empty: live mounts are never touched.
            except OSError:
                pass

    def runtime_dir(self):
        return "/run/pycell-compare-%s" % self.key

    def version(self):
        text = subprocess.run([self.binary, "--version"], capture_output=True,
                              text=True).stdout.split()
        return {"pycell": " ".join(text[1:]) if len(text) > 1 else "?"}

    def wait_pool_full(self, timeout=120):
        """Before a timed new session: the warm pool back at its target (a hand-over, not a
        cold start, is what a pycell user gets at this load). Untimed."""
        deadline = time.monotonic() + timeout
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            if time.monotonic() > deadline or self.server.poll() is not None:
                raise BenchError("pycell's pool was not full within %d s (server exit %s); "
                                 "log: %s" % (timeout, self.server.poll(), self.log_path))
            time.sleep(0.05)

    def before_sample(self):
        self.wait_pool_full()

    def new_session(self, file_ids=None):
        body = {"file_ids": file_ids} if file_ids else {}
        return PycellSession(self, self.http.json("POST", "/v1/sessions", body, expect=(201,))["id"])

    def scenario(self, csv_bytes):
        """Upload the CSV, a session with it in /mnt/data, the analysis cell, the chart
        downloaded: the PNG's bytes (and the stored files deleted afterwards, untimed)."""
        uploaded = json.loads(self.http.request("POST", "/v1/files?filename=" + shipments.CSV_NAME,
                                                csv_bytes, content_type="text/csv",
                                                expect=(201,)))
        session = self.new_session([uploaded["id"]])
        record = session.execute(shipments.ANALYSIS, timeout_s=600)
        charts = [a for a in record["artifacts"] if a["filename"] == shipments.CHART_NAME]
        if not charts:
            raise BenchError("pycell: the cell wrote no %s: %s" % (shipments.CHART_NAME,
                                                                  json.dumps(record)[:800]))
        png = self.http.request("GET", "/v1/files/%s/content" % charts[0]["id"])
        self._cleanup = (session, [uploaded["id"], charts[0]["id"]])
        return png

    def after_scenario(self):
        session, files = self._cleanup
        session.close()
        for file_id in files:
            self.http.request("DELETE", "/v1/files/" + file_id)

    def memory_root(self):
        return self.server.pid

    def after_memory(self):
        self.wait_pool_full()  # The refill of the pool counts before, not after.


# ---------------------------------------------------------------------------------------------
# A Jupyter kernel through jupyter_client


class JupyterKernelSession:
    def __init__(self, cwd=None):
        from jupyter_client.manager import KernelManager
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=600)

    def run(self, code, timeout=600):
        """execute_request; waits for the execute_reply and the idle status (what
        BlockingKernelClient.execute_interactive does); the execute_result's text/plain."""
        msg_id = self.kc.execute(code, store_history=True)
        status, result, idle = None, None, False
        while status is None:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                status = reply["content"]["status"]
        while not idle:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "execute_result":
                result = msg["content"]["data"].get("text/plain")
            idle = msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
        if status != "ok":
            raise BenchError("jupyter kernel: cell failed: %s" % code[:200])
        return result

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def pids(self):
        return procmem.tree(self.km.provisioner.process.pid)


class JupyterKernel:
    key = "jupyter_kernel"
    label = "Jupyter kernel (jupyter_client)"

    def start(self):
        pass

    def stop(self):
        pass

    def version(self):
        import importlib.metadata
        return {p: importlib.metadata.version(p) for p in ("jupyter_client", "ipykernel")}

    def before_sample(self):
        pass

    def new_session(self):
        return JupyterKernelSession()

    def scenario(self, csv_bytes):
        """The CSV written into a new folder (the kernel's cwd), a kernel there, the cell, the
        chart read from the folder."""
        self._folder = tempfile.mkdtemp(prefix="compare-jk-")
        with open(os.path.join(self._folder, shipments.CSV_NAME), "wb") as f:
            f.write(csv_bytes)
        self._session = JupyterKernelSession(cwd=self._folder)
        self._session.run(shipments.ANALYSIS)
        with open(os.path.join(self._folder, shipments.CHART_NAME), "rb") as f:
            return f.read()

    def after_scenario(self):
        self._session.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def memory_root(self):
        return None

    def after_memory(self):
        pass


# ---------------------------------------------------------------------------------------------
# Jupyter Server: REST + websocket


class JupyterServerSession:
    def __init__(self, peer, path=""):
        self.peer = peer
        kernel = peer.http.json("POST", "/api/kernels", {"name": "python3", "path": path},
                                expect=(201,))
        self.kernel_id = kernel["id"]
        self.session = uuid.uuid4().hex
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect
        request = HTTPRequest("ws://127.0.0.1:%d/api/kernels/%s/channels?session_id=%s" %
                              (peer.port, self.kernel_id, self.session),
                              headers={"Authorization": "token " + peer.token})

        async def connect():  # Inside the loop, so that its futures belong to it.
            return await websocket_connect(request, max_message_size=256 * 2**20)

        self.ws = peer.loop.run_until_complete(connect())

    def run(self, code, timeout=600):
        return self.peer.loop.run_until_complete(asyncio.wait_for(self._run(code), timeout))

    async def _run(self, code):
        msg_id = uuid.uuid4().hex
        self.ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "bench", "session": self.session,
                       "msg_type": "execute_request", "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        status, result, idle = None, None, False
        while status is None or not idle:
            text = await self.ws.read_message()
            if text is None:
                raise BenchError("jupyter server: the websocket closed")
            msg = json.loads(text)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "execute_reply":
                status = msg["content"]["status"]
            elif kind == "execute_result":
                result = msg["content"]["data"].get("text/plain")
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        if status != "ok":
            raise BenchError("jupyter server: cell failed: %s" % code[:200])
        return result

    def close(self):
        async def close():
            self.ws.close()

        self.peer.loop.run_until_complete(close())
        self.peer.http.request("DELETE", "/api/kernels/" + self.kernel_id, expect=(204,))

    def pids(self):
        return None  # Weighed as the server's tree grows.


# Jupyter Server 1.23 leaves Nagle's algorithm on for kernel websockets: its small messages wait
# for the client's delayed ACK. The optional peer jupyter_server_nodelay measures it with
# TCP_NODELAY set (a one-line patch applied at start; Jupyter itself is not changed).
NODELAY_PATCH = """
import jupyter_server.services.kernels.handlers as handlers
open_channels = handlers.ZMQChannelsHandler.open
def open_with_nodelay(self, *args, **kwargs):
    self.set_nodelay(True)
    return open_channels(self, *args, **kwargs)
handlers.ZMQChannelsHandler.open = open_with_nodelay
from jupyter_server.serverapp import main
main()
"""


class JupyterServer:
    def __init__(self, nodelay=False):
        self.nodelay = nodelay
        self.key = "jupyter_server_nodelay" if nodelay else "jupyter_server"
        self.label = ("Jupyter Server, TCP_NODELAY patched in" if nodelay
                      else "Jupyter Server (REST + websocket)")
        self.command = ([PYTHON, "-c", NODELAY_PATCH] if nodelay
                        else [PYTHON, "-m", "jupyter_server"])
        self.proc = None
        self.folder = None
        self.loop = None

    def start(self):
        self.folder = tempfile.mkdtemp(prefix="compare-js-")
        self.token = uuid.uuid4().hex
        self.port = free_port()
        self.log = open(os.path.join(self.folder, "server.log"), "wb")
        root = os.path.join(self.folder, "root")
        os.makedirs(root)
        self.proc = subprocess.Popen(
            self.command + ["--ServerApp.ip=127.0.0.1",
             "--ServerApp.port=%d" % self.port, "--ServerApp.port_retries=0",
             "--ServerApp.token=" + self.token, "--ServerApp.root_dir=" + root,
             "--ServerApp.open_browser=False", "--allow-root"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, **OWN_SESSION)
        self.loop = asyncio.new_event_loop()
        self.http = HttpConnection(self.port, {"Authorization": "token " + self.token})
        deadline = time.monotonic() + 120
        while True:
            try:
                self.http.request("GET", "/api/status")
                return
            except (OSError, BenchError, http.client.HTTPException):
                self.http.close()
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise BenchError("jupyter server did not answer /api/status; see %s" %
                                 self.log.name)
            time.sleep(0.2)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.loop:  # Tornado's websocket readers may still wait: cancel them first.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def version(self):
        import importlib.metadata
        return {"jupyter_server": importlib.metadata.version("jupyter_server"),
                "tornado": importlib.metadata.version("tornado")}

    def before_sample(self):
        pass

    def new_session(self, path=""):
        return JupyterServerSession(self, path)

    def scenario(self, csv_bytes):
        """A folder and the CSV through the contents API, a kernel in that folder, the cell over
        the websocket, the chart from /files/."""
        folder = "run-" + uuid.uuid4().hex[:12]
        self.http.request("PUT", "/api/contents/" + folder, {"type": "directory"},
                          expect=(201,))
        self.http.request("PUT", "/api/contents/%s/%s" % (folder, shipments.CSV_NAME),
                          {"type": "file", "format": "text", "content": csv_bytes.decode()},
                          expect=(201,))
        self._session = self.new_session(folder)
        self._session.run(shipments.ANALYSIS)
        self._folder = folder
        return self.http.request("GET", "/files/%s/%s" % (folder, shipments.CHART_NAME))

    def after_scenario(self):
        self._session.close()
        shutil.rmtree(os.path.join(self.folder, "root", self._folder), ignore_errors=True)

    def memory_root(self):
        return self.proc.pid

    def after_memory(self):
        pass


# ---------------------------------------------------------------------------------------------
# A cold python3 in gVisor, in bubblewrap, or with no sandbox at all


def _repl_source():
    with open(os.path.join(HERE, "repl.py")) as f:
        return f.read()


class SandboxedSession:
    def __init__(self, argv, cwd):
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, bufsize=0, **OWN_SESSION)
        self.out = self.proc.stdout
        ready = self._read()
        if ready.get("status") != "ready":
            raise BenchError("%s: no ready line: %r" % (argv[0], ready))

    def _read(self):
        line = self.out.readline()
        if not line:
            raise BenchError("the sandboxed interpreter exited (status %s)" % self.proc.poll())
        return json.loads(line)

    def run(self, code):
        self.proc.stdin.write(json.dumps({"code": code}).encode() + b"\n")
        reply = self._read()
        if reply["status"] != "ok":
            raise BenchError("sandboxed cell failed: %s" % reply.get("error"))
        return reply["result"]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()

    def pids(self):
        return procmem.tree(self.proc.pid)


class Sandboxed:
    """kind: "runsc" (gVisor: `runsc do`, its default platform, no network, the host's root
    read-only under a tmpfs overlay), "bwrap" (bubblewrap: every namespace unshared, /usr and
    /etc read-only, a tmpfs /tmp, the work folder as /mnt/data, no capabilities) or "none"."""

    LABELS = {"runsc": "gVisor (runsc do) + IPython", "bwrap": "bubblewrap + IPython",
              "none": "no sandbox: python3 + IPython"}

    def __init__(self, kind, mpl_cache):
        self.kind = kind
        self.key = kind
        self.label = self.LABELS[kind]
        self.mpl_cache = mpl_cache  # A warm matplotlib font cache, as every other peer has.
        self.source = _repl_source()

    def start(self):
        pass

    def stop(self):
        pass

    def version(self):
        if self.kind == "none":
            return {"python": sys.version.split()[0]}
        text = subprocess.run([self.kind, "--version"], capture_output=True, text=True).stdout
        first = text.splitlines()[0].split() if text else ["?"]
        return {self.kind: first[-1]}  # "runsc version 0.0~20221219.0", "bubblewrap 0.8.0"

    def before_sample(self):
        pass

    def argv(self, code, folder):
        env = ["MPLCONFIGDIR=" + self.mpl_cache, "IPYTHONDIR=/tmp/ipython", "HOME=/tmp"]
        if self.kind == "none":
            return ["/usr/bin/env"] + env + [PYTHON, "-c", code]
        if self.kind == "runsc":
            return (["runsc", "--network=none", "do", "-quiet", "-cwd", folder or "/tmp",
                     "/usr/bin/env"] + env + [PYTHON, "-c", code])
        argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",  # (no TIOCSTI)
                "--cap-drop", "ALL", "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
                "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                "--bind", self.mpl_cache, self.mpl_cache]
        if folder:
            argv += ["--bind", folder, "/mnt/data", "--chdir", "/mnt/data"]
        for assignment in env:
            name, _, value = assignment.partition("=")
            argv += ["--setenv", name, value]
        return argv + [PYTHON, "-c", code]

    def new_session(self, folder=None):
        return SandboxedSession(self.argv(self.source, folder), folder or "/tmp")

    def cold_start(self, code):
        """`python3 -c code` in the sandbox, to its exit: the bare cost of one start."""
        done = subprocess.run(self.argv(code, None), cwd="/tmp", capture_output=True, timeout=600,
                              **OWN_SESSION)
        if done.returncode != 0:
            raise BenchError("%s cold start failed (%d): %s" % (self.kind, done.returncode,
                                                                done.stderr[-400:]))
        return done.stdout

    def scenario(self, csv_bytes):
        """The CSV written into a new folder, an interpreter in the sandbox with that folder as
        its working directory, the cell, the chart: read from the folder (bubblewrap, none) or,
        in gVisor, whose overlay keeps writes inside the sandbox, sent back over the pipe."""
        self._folder = tempfile.mkdtemp(prefix="compare-%s-" % self.kind)
        with open(os.path.join(self._folder, shipments.CSV_NAME), "wb") as f:
            f.write(csv_bytes)
        self._session = self.new_session(self._folder)
        self._session.run(shipments.ANALYSIS)
        if self.kind == "runsc":
            encoded = self._session.run("import base64; base64.b64encode(open(%r, 'rb').read())"
                                        ".decode()" % shipments.CHART_NAME)
            return base64.b64decode(encoded.strip("'"))
        with open(os.path.join(self._folder, shipments.CHART_NAME), "rb") as f:
            return f.read()

    def after_scenario(self):
        self._session.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def memory_root(self):
        return None

    def after_memory(self):
        pass

"""`pycell serve` as a child process for black-box tests (tests/api, tests/cli).

ServeProcess starts the real server on a free port (port 0) with a given data dir, reads the
port from its listening line, waits for /readyz, and stops it with SIGTERM (or SIGKILL). Its
stdout is read by a thread (for the listening and stopped lines); stderr (the log) goes to a file
that log_tail() shows when something fails. Standard library only.
"""

import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

LISTENING_RE = re.compile(r"^pycell serve: listening on http://(\S+):(\d+) \(data (.*)\)$")
STOPPED_LINE = "pycell serve: stopped"


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
        self.stdout_lines = []
        self._lines_cv = threading.Condition()
        self._reader = None

    def start(self, listen_timeout=60, ready_timeout=120, extra_args=()):
        """Starts the server and returns once /readyz says 200; host and port are then set."""
        log = open(self.log_path, "ab")
        self.stdout_lines = []
        self.proc = subprocess.Popen(
            [self.pycell, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir,
             "--runtime-dir", self.runtime_dir, "--ready-sessions", "1", *extra_args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
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
                return
            if status is not None and (status != 503 or not retry_after):
                raise RuntimeError("GET /readyz while the pool fills: want 200, or 503 with "
                                   "Retry-After; got %s" % status)
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("GET /readyz was not 200 within %d s (exit %s)\n%s" %
                                   (ready_timeout, self.proc.poll(), self.log_tail()))
            time.sleep(0.1)

    def _read_stdout(self):
        for raw in self.proc.stdout:
            with self._lines_cv:
                self.stdout_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._lines_cv.notify_all()

    def stop(self, timeout=60):
        """SIGTERM; the exit code (None if it did not exit within `timeout`)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._reader.join(10)
        self.proc.stdout.close()
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

#!/usr/bin/python3
"""Fault injection, black-box (issue 7, "Crashes and faults"): a real `pycell serve` is hurt,
restarted on the same data dir, and checked.

Usage:
  test_faults.py --pycell PATH [unittest arguments, e.g. -v or -k Zygote]

Each case starts a server of its own (its own data dir, one runtime dir for all), does one fault,
restarts the server on the same data dir and checks the same invariants (check_invariants):

- the server starts again and /readyz is 200;
- every file record can be downloaded, and its bytes hash to its sha256 and size;
- every blob under files/blobs is named by a record, and files/tmp is empty;
- `pycell audit verify --data-dir` says the chain is intact;
- every ended session has an end reason; every active one has a live sandbox (its folder locked
  by the server, processes in its cgroup);
- nothing of an earlier run (killed or stopped) is left: no session folder, cgroup, mount or
  process of it; every session folder there is belongs to a live session; the host's mount table
  has nothing under the runtime dir or the data dir;
- the server's log shows no request that met a bug (a 500) and no crash.

The faults: kill -9 during an upload, an execution, file deletes and audit writes; a full disk (a
small tmpfs as data dir) during an upload and a cell; the zygote killed while sessions run;
another process holding SQLite's lock; the wall clock jumping forward past the idle timeout and
the lifetime (libfaketime, Debian's `faketime`: skipped when it is not installed; why only the
wall clock: TestClockJump).

A kill "during" something is made certain rather than timed: the something is long (a slow
upload the test streams itself, a sleeping cell, hundreds of deletes, a loop of requests) and the
kill comes once the test has seen it under way. Where a race has two correct outcomes (a request
in flight at the kill), either is accepted, and the invariants are checked always.

Needs root (sessions, tmpfs mounts, cgroups). Only the standard library.
"""

import datetime
import glob
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)
from pycell_server import (alive, cmdline, descendants, describe, expect,  # noqa: E402
                           is_zombie, parent_map, process_start, run_pycell, sha256)

PYCELL = None  # The binary, from --pycell.
RUNTIME_DIR = "/run/pycell-fault-tests"
CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_PARENT = "pycell"  # engine.cgroup_parent's default (src/common/config.h).
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def note(text, *args):
    """What a case saw, for whoever runs it by hand (PYCELL_FAULT_NOTES=1)."""
    if os.environ.get("PYCELL_FAULT_NOTES"):
        print("  note: " + (text % args if args else text), file=sys.stderr)


def wait_until(predicate, timeout, interval=0.05):
    """predicate()'s first true value within `timeout` seconds, else its last (false) value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- processes, cgroups, locks, mounts (from /proc and /sys) ---------------------------------


def zygotes_of(server_pid):
    """(pid, start) of the server's zygote children (`pycell-zygote __zygote`)."""
    return [(pid, process_start(pid)) for pid in parent_map().get(server_pid, [])
            if cmdline(pid).startswith("pycell-zygote") and not is_zombie(pid)]


def session_dir(session_id):
    return os.path.join(RUNTIME_DIR, "sessions", session_id)


def session_folders():
    try:
        return sorted(n for n in os.listdir(os.path.join(RUNTIME_DIR, "sessions"))
                      if n.startswith("sess_"))
    except FileNotFoundError:
        return []


def cgroup_dirs(session_id):
    """The session's cgroup folders that exist, one per hierarchy (v1) or one (v2)."""
    found = set()
    for pattern in ("%s/*/%s/%s" % (CGROUP_ROOT, CGROUP_PARENT, session_id),
                    "%s/%s/%s" % (CGROUP_ROOT, CGROUP_PARENT, session_id)):
        for path in glob.glob(pattern):
            if os.path.isdir(path):
                found.add(os.path.realpath(path))
    return sorted(found)


def cgroup_members(session_id):
    """Pids of the processes in the session's cgroup (any hierarchy), from /proc/*/cgroup."""
    mark = re.compile(r":/%s/%s(/|$)" % (re.escape(CGROUP_PARENT), re.escape(session_id)), re.M)
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cgroup" % name) as f:
                text = f.read()
        except OSError:
            continue
        if mark.search(text) and not is_zombie(int(name)):
            members.append(int(name))
    return members


def flock_holders(path):
    """Pids holding an flock on the folder `path`, from /proc/locks."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    key = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    holders = []
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if "->" in fields:
                continue  # A waiter, not a holder.
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == key:
                holders.append(int(fields[4]))
    return holders


def mount_points(pid="self"):
    """The mount points in /proc/PID/mountinfo (octal escapes undone)."""
    points = []
    with open("/proc/%s/mountinfo" % pid) as f:
        for line in f:
            point = line.split()[4]
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point))
    return points


def under(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")


# --- HTTP helpers ----------------------------------------------------------------------------


def list_all(client, path):
    """Every item of a paged /v1 list (limit and after)."""
    items, after = [], None
    while True:
        url = path + ("&" if "?" in path else "?") + "limit=1000"
        if after:
            url += "&after=" + after
        body = expect(client.get(url), 200, "GET " + url)
        items += body["data"]
        if not body["has_more"]:
            return items
        after = body["last_id"]


def audit_events(client, action=None):
    events, after = [], 0
    while True:
        url = "/v1/audit?limit=1000&after_seq=%d" % after
        if action:
            url += "&action=" + action
        body = expect(client.get(url), 200, "GET " + url)
        events += body["data"]
        if not body["has_more"]:
            return events
        after = body["last_seq"]


def result_text(record):
    for output in record.get("outputs", []):
        if output.get("output_type") == "execute_result":
            return output["data"].get("text/plain")
    return None


class StreamedUpload(threading.Thread):
    """A raw upload the test controls: the head announces `total` bytes, then pieces of CSV go
    out (`delay` seconds apart) until all are sent, the server stops taking them, or stop is
    set. response() reads the server's answer on the same socket."""

    def __init__(self, client, filename, total, delay=0.0, piece=256 << 10):
        super().__init__(daemon=True)
        self.total, self.delay = total, delay
        self.sent = 0
        self.error = None
        self.stop = threading.Event()
        line = b"region,month,amount\n"
        self.piece = (line * (piece // len(line) + 1))[:piece]
        self.sock = socket.create_connection((client.host, client.port), 60)
        self.sock.sendall(("POST /v1/files?filename=%s HTTP/1.1\r\nHost: %s:%d\r\n%s"
                           "Content-Type: text/csv\r\nContent-Length: %d\r\n\r\n" %
                           (filename, client.host, client.port, client.auth_line().decode(),
                            total)).encode())

    def run(self):
        try:
            while self.sent < self.total and not self.stop.is_set():
                piece = self.piece[:min(len(self.piece), self.total - self.sent)]
                self.sock.sendall(piece)
                self.sent += len(piece)
                if self.delay:
                    time.sleep(self.delay)
        except OSError as e:
            self.error = e  # The server answered and closed, or died.

    def response(self, timeout=120):
        self.sock.settimeout(timeout)
        reply = http.client.HTTPResponse(self.sock, method="POST")
        reply.begin()
        body = reply.read()
        return pycell_server.Reply(reply.status, pycell_server.headers_of(reply), body)

    def close(self):
        self.stop.set()
        try:
            self.sock.close()
        except OSError:
            pass


class Loop(threading.Thread):
    """Calls step(i) until stopped; counts the calls that returned True, and keeps the errors
    of the requests the server went away under."""

    def __init__(self, step):
        super().__init__(daemon=True)
        self.step = step
        self.stop = threading.Event()
        self.done = 0
        self.errors = []

    def run(self):
        i = 0
        while not self.stop.is_set():
            try:
                if self.step(i):
                    self.done += 1
            except (OSError, http.client.HTTPException) as e:
                self.errors.append(e)  # The server died under the request: expected here.
                if self.stop.wait(0.05):
                    break
            i += 1


# --- the test case ---------------------------------------------------------------------------


class FaultTestCase(pycell_server.HttpAssertions, unittest.TestCase):
    """One server per test on a data dir of its own; `old_ids` collects the sessions of every
    run that was killed or stopped, whose traces must be gone after the restart."""

    maxDiff = 4000

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="pycell-fault-tests-")
        self.data = os.path.join(self.work, "data")
        os.makedirs(self.data)
        self.server = None
        self.old_ids = set()

    def tearDown(self):
        try:
            # A case that failed half-way: the server cleans up after itself (sessions,
            # cgroups, mounts) unless it cannot stop.
            if self.server and self.server.proc and self.server.proc.poll() is None:
                self.server.stop(timeout=30)  # SIGKILL after 30 s.
        finally:
            self.log = self.server.log_tail(80) if self.server else "(no server)"
            if os.environ.get("PYCELL_API_KEEP") is None:
                shutil.rmtree(self.work, ignore_errors=True)

    def run(self, result=None):
        # The server's log goes with every failure: the faults are in there.
        failures = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result and len(result.failures) + len(result.errors) > failures:
            print("\n%s: %s" % (self.id(), getattr(self, "log", "(no log)")), file=sys.stderr)
        return outcome

    def new_server(self, data_dir=None):
        data_dir = data_dir or self.data
        self.data = data_dir
        self.server = pycell_server.ServeProcess(PYCELL, data_dir, RUNTIME_DIR,
                                                 os.path.join(self.work, "server.log"))
        return self.server

    def start(self, **kw):
        if self.server is None:
            self.new_server()
        self.server.start(**kw)
        return self.server.client()

    def new_session(self, client, **body):
        return expect(client.create_session(**body), 201, "POST /v1/sessions")["id"]

    def run_ok(self, client, session_id, code, **kw):
        record = expect(client.execute(session_id, code, **kw), 200, "execute %r" % code)
        self.assertEqual(record["status"], "ok", record)
        return record

    def wait_for_file(self, client, session_id, name, timeout=30):
        """Waits until a running cell has written /mnt/data/NAME (so it surely runs)."""
        def written():
            reply = client.get("/v1/sessions/%s/files" % session_id)
            return reply.status == 200 and "/mnt/data/" + name in [
                f["path"] for f in reply.json()["data"]]
        self.assertTrue(wait_until(written, timeout),
                        "the cell did not write /mnt/data/%s within %d s" % (name, timeout))

    # --- the faults' common steps -------------------------------------------------------------

    def kill9(self):
        """SIGKILL of the server; every process it had (zygote, sessions, cells) must be gone
        within 10 s, before any restart (the lifeline). The run's sessions join old_ids."""
        family = descendants(self.server.proc.pid)
        self.assertTrue(family, "the server runs its zygote and sessions in child processes")
        self.remember_sessions()
        self.server.kill()
        self.old_ids.update(session_folders())  # Nobody removes them now: all of that run.
        note("killed the server: %d processes, sessions %s", len(family), sorted(self.old_ids))
        wait_until(lambda: not any(alive(p) for p in family), 10, 0.1)
        self.assertEqual([describe(p) for p in family if alive(p)], [],
                         "processes of the killed server still run")
        for session_id in self.old_ids:
            self.assertEqual(cgroup_members(session_id), [],
                             "processes of session %s outlive the server" % session_id)

    def remember_sessions(self):
        """Adds the sessions of the running server (records and folders) to old_ids: after a
        restart nothing of them may be left."""
        try:
            self.old_ids.update(s["id"] for s in list_all(self.server.client(), "/v1/sessions"))
        except (OSError, http.client.HTTPException, AssertionError):
            pass  # The fault may have made the server slow; the folders say it too.
        self.old_ids.update(session_folders())

    def restart(self, **kw):
        seen = os.path.getsize(self.server.log_path)
        self.server.start(**kw)
        with open(self.server.log_path, errors="replace") as f:
            f.seek(seen)
            for line in f:
                if re.search(r"no file record names|sessions of the previous run|left by a pycell",
                             line):
                    note("server: %s", line.strip())
        return self.server.client()

    def stop(self):
        self.remember_sessions()
        rc = self.server.stop(timeout=60)
        self.assertEqual(rc, 0, "after SIGTERM the server exited %s (want 0 within 60 s)" % rc)
        self.assertEqual(self.server.last_stdout_line(), pycell_server.STOPPED_LINE)

    def check_invariants(self, data_mount=None):
        """The invariants of the module docstring, on the running server; `data_mount` is a
        mount point the test made itself (the full-disk tmpfs), not a leftover."""
        client = self.server.client()
        problems = []
        # Ready: the warm pool full again (it refills after sessions were taken).
        if not wait_until(lambda: client.get("/readyz", timeout=30).status == 200, 60, 0.2):
            problems.append("GET /readyz was not 200 within 60 s: %r" % client.get("/readyz"))

        # Every record has its bytes.
        files = list_all(client, "/v1/files")
        named = set()
        for f in files:
            named.add(f["sha256"])
            content = client.get("/v1/files/%s/content" % f["id"])
            if content.status != 200:
                problems.append("file %s (%s): content answers %r" % (f["id"], f["filename"],
                                                                       content))
            elif len(content.body) != f["bytes"] or sha256(content.body) != f["sha256"]:
                problems.append("file %s (%s): %d bytes hashing to %s, the record says %d and %s"
                                % (f["id"], f["filename"], len(content.body),
                                   sha256(content.body), f["bytes"], f["sha256"]))

        # Every byte has its record; no temporary upload is left.
        blobs = os.path.join(self.data, "files", "blobs")
        for shard in sorted(os.listdir(blobs)):
            for name in sorted(os.listdir(os.path.join(blobs, shard))):
                if not (len(name) == 64 and name.startswith(shard)):
                    problems.append("files/blobs/%s/%s is not a blob name" % (shard, name))
                elif name not in named:
                    problems.append("blob %s has no file record" % name)
        leftovers = os.listdir(os.path.join(self.data, "files", "tmp"))
        if leftovers:
            problems.append("files/tmp holds %s" % leftovers)

        # The audit chain.
        rc, out, err = run_pycell(PYCELL, ["audit", "verify", "--data-dir", self.data, "--json"],
                                  cwd=self.work)
        verdict = None
        try:
            verdict = json.loads(out)
        except ValueError:
            pass
        if rc != 0 or not verdict or verdict.get("verified") is not True:
            problems.append("pycell audit verify: exit %d, %r %r" % (rc, out, err))

        # Sessions: ended ones say why; active ones are alive; an earlier run's are all ended.
        server_pid = self.server.proc.pid
        ended = set()
        for s in list_all(client, "/v1/sessions"):
            if s["status"] == "ended":
                ended.add(s["id"])
                if not s.get("end_reason") or not s.get("ended_at"):
                    problems.append("session %s ended without a reason or time: %r" % (s["id"],
                                                                                        s))
            elif s["status"] == "active":
                if s["id"] in self.old_ids:
                    problems.append("session %s of an earlier run is active" % s["id"])
                elif server_pid not in flock_holders(session_dir(s["id"])):
                    problems.append("active session %s has no folder held by the server" %
                                    s["id"])
                elif not cgroup_members(s["id"]):
                    problems.append("active session %s has no process in its cgroup" % s["id"])
            else:
                problems.append("session %s has status %r" % (s["id"], s["status"]))

        # Nothing of the earlier runs (killed or stopped) is left.
        server_mounts = mount_points(server_pid)
        for session_id in sorted(self.old_ids):
            if os.path.lexists(session_dir(session_id)):
                problems.append("the folder of session %s (earlier run) is left" % session_id)
            for path in cgroup_dirs(session_id):
                problems.append("the cgroup %s (earlier run) is left" % path)
            members = cgroup_members(session_id)
            if members:
                problems.append("processes of session %s (earlier run) run: %s" %
                                (session_id, [describe((p, 0)) for p in members]))
            for point in server_mounts:
                if session_id in point:
                    problems.append("the server's mount %s is of an earlier run" % point)

        # Every session folder is a live session's (held by the server), and none is of a
        # session ended on record. A folder may be so for a moment while a session starts or
        # ends, so look again before judging.
        def strays():
            return ["%s is held by no live session" % n for n in session_folders()
                    if server_pid not in flock_holders(session_dir(n))] + [
                        "%s is of a session ended on record" % n for n in session_folders()
                        if n in ended]
        stray = strays()
        if stray:
            time.sleep(1)
            stray = [n for n in strays() if n in stray]
        for text in stray:
            problems.append("the session folder " + text)
        live = set(session_folders())
        for point in mount_points(server_pid):
            if under(point, os.path.join(RUNTIME_DIR, "sessions")):
                name = os.path.relpath(point, os.path.join(RUNTIME_DIR, "sessions")).split("/")[0]
                if name not in live:
                    problems.append("the server's mount %s belongs to no session folder" % point)
        for point in mount_points():
            if under(point, RUNTIME_DIR) or (under(point, self.data) and point != data_mount):
                problems.append("the host has a mount at %s" % point)
        # No request met a bug (a 500 is logged with its status) and nothing crashed.
        with open(self.server.log_path, errors="replace") as f:
            for line in f:
                if re.search(r"INTERNAL: |CHECK failed|terminate called|Sanitizer", line):
                    problems.append("the server log says: " + line.strip())
        if problems:
            self.fail("invariants broken:\n  " + "\n  ".join(problems))
        return files


# --- kill -9 ---------------------------------------------------------------------------------


class TestKillDuringUpload(FaultTestCase):
    """kill -9 while a 64 MiB upload is half sent (it is being written to files/tmp) and small
    uploads run in a loop: a half upload leaves nothing; every upload answered 201 survives."""

    def test_kill_during_upload(self):
        client = self.start()
        kept_data = os.urandom(100 << 10).hex().encode()
        kept = expect(client.upload_raw("kept.txt", kept_data), 201, "upload kept.txt")

        acked = {}  # id -> sha256 of every small upload answered 201.

        def small(i):
            data = ("small upload %d %s\n" % (i, os.urandom(8).hex())).encode() * 50
            reply = client.upload_raw("small-%d.txt" % i, data)
            if reply.status == 201:
                acked[reply.json()["id"]] = sha256(data)
                return True
            return False

        loop = Loop(small)
        big = StreamedUpload(client, "big.csv", 64 << 20, delay=0.05)
        tmp_dir = os.path.join(self.data, "files", "tmp")

        def tmp_bytes():
            total = 0
            for entry in os.scandir(tmp_dir):
                try:
                    total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    pass
            return total

        try:
            big.start()
            loop.start()
            self.assertTrue(wait_until(lambda: tmp_bytes() >= (4 << 20) and loop.done >= 20, 60),
                            "the upload should be on its way into files/tmp (%d bytes) and "
                            "small uploads answered (%d) before the kill" % (tmp_bytes(),
                                                                            loop.done))
            self.assertLess(big.sent, 64 << 20, "the upload finished before the kill")
            self.kill9()
        finally:
            loop.stop.set()
            big.close()
        loop.join(30)

        client = self.restart()
        files = {f["id"]: f for f in self.check_invariants()}
        self.assertIn(kept["id"], files)
        self.assertEqual(files[kept["id"]]["sha256"], sha256(kept_data))
        self.assertNotIn("big.csv", [f["filename"] for f in files.values()])
        for file_id, digest in acked.items():
            self.assertIn(file_id, files, "an upload answered 201 is lost after the restart")
            self.assertEqual(files[file_id]["sha256"], digest)
        self.stop()


class TestKillDuringExecution(FaultTestCase):
    """kill -9 while a cell sleeps: the session's processes die with the server (its lifeline),
    and the restarted server says the session ended (server_restart)."""

    def test_kill_during_execution(self):
        client = self.start()
        session_id = self.new_session(client)
        self.run_ok(client, session_id, "x = 41")
        answer = {}

        def sleeper():
            try:
                answer["reply"] = client.execute(
                    session_id, "import time\nopen('/mnt/data/started', 'w').close()\n"
                    "time.sleep(60)", timeout_s=120, timeout=150)
            except (OSError, http.client.HTTPException) as e:
                answer["error"] = e  # The server died under it.

        thread = threading.Thread(target=sleeper, daemon=True)
        thread.start()
        self.wait_for_file(client, session_id, "started")
        members = cgroup_members(session_id)  # Its init and the cell's process.
        self.assertGreaterEqual(len(members), 2, [describe((p, 0)) for p in members])
        self.kill9()  # Also checks that nothing in the session's cgroup runs any more.
        thread.join(30)
        self.assertNotIn("reply", answer, "the killed server answered the cell: %r" % answer)

        client = self.restart()
        self.check_invariants()
        session = expect(client.get("/v1/sessions/" + session_id), 200, "GET the session")
        self.assertEqual(session["status"], "ended", session)
        self.assertEqual(session["end_reason"], "server_restart", session)
        self.assertError(client.execute(session_id, "x"), 410, "session_killed")
        # The cell cut by the kill: the first cell is on record; the cut one either is not
        # (nothing was recorded before it ended) or says it did not finish.
        executions = list_all(client, "/v1/sessions/%s/executions" % session_id)
        note("the killed session's executions after the restart: %s",
             [(e["code"], e["status"]) for e in executions])
        self.assertGreaterEqual(len(executions), 1, executions)
        self.assertEqual(executions[0]["status"], "ok", executions[0])
        for record in executions[1:]:
            self.assertNotEqual(record["status"], "ok", record)
        ended = [e for e in audit_events(client, "session.end") if e["target"] == session_id]
        self.assertEqual([e["detail"].get("reason") for e in ended], ["server_restart"], ended)
        self.stop()


class TestKillDuringDeletes(FaultTestCase):
    """kill -9 while a thread deletes 400 files one by one (some share their bytes): every
    delete answered 200 stays done, the rest keep their bytes, and no blob is left unnamed."""

    COUNT = 400

    def test_kill_during_deletes(self):
        client = self.start()
        contents = []
        for i in range(self.COUNT):
            # One file in two shares its bytes with three others: deleting one of them must not
            # take the bytes of the rest.
            text = ("shared %d\n" % (i // 8)) if i % 2 == 0 else ("own %d %s\n" % (
                i, os.urandom(4).hex()))
            contents.append((text * 20).encode())
        ids = [None] * self.COUNT

        def upload(start):
            for i in range(start, self.COUNT, 4):
                ids[i] = expect(client.upload_raw("f%03d.txt" % i, contents[i]), 201,
                                "upload %d" % i)["id"]

        uploaders = [threading.Thread(target=upload, args=(k,)) for k in range(4)]
        for t in uploaders:
            t.start()
        for t in uploaders:
            t.join()
        self.assertNotIn(None, ids)
        order = list(range(self.COUNT))
        random.Random(7).shuffle(order)
        deleted, attempted = set(), []

        def delete(n):
            if n >= self.COUNT:
                return False
            i = order[n]
            attempted.append(i)
            reply = client.delete("/v1/files/" + ids[i])
            if reply.status == 200:
                deleted.add(i)
                return True
            raise AssertionError("DELETE %s: %r" % (ids[i], reply))

        loop = Loop(delete)
        loop.start()
        try:
            self.assertTrue(wait_until(lambda: len(deleted) >= self.COUNT // 4, 60),
                            "the deletes did not get under way")
            self.kill9()
        finally:
            loop.stop.set()
        loop.join(30)
        self.assertLess(len(deleted), self.COUNT, "every delete was done before the kill")
        note("%d of %d deletes answered before the kill", len(deleted), self.COUNT)

        client = self.restart()
        files = {f["id"]: f for f in self.check_invariants()}
        for i in range(self.COUNT):
            if i in deleted:
                self.assertNotIn(ids[i], files, "a delete answered 200 is undone")
            elif i not in attempted:
                self.assertIn(ids[i], files, "a file nobody deleted is gone")
                self.assertEqual(files[ids[i]]["sha256"], sha256(contents[i]))
        self.stop()


class TestKillDuringAuditWrites(FaultTestCase):
    """kill -9 while eight threads upload, download and run cells (each an audit event in the
    transaction of its change): the chain verifies, every answered request is on record, and
    every file record has its upload event (no change without its event, nor the reverse)."""

    def test_kill_during_audit_writes(self):
        client = self.start(ready_sessions=2)
        seed = expect(client.upload_raw("seed.txt", b"seed\n" * 100), 201, "upload seed")
        sessions = [self.new_session(client) for _ in range(2)]
        uploads, executions = {}, {}

        def uploader(i):
            data = ("%s %d\n" % (os.urandom(6).hex(), i)).encode() * 10
            reply = client.upload_raw("a-%s.txt" % os.urandom(4).hex(), data)
            if reply.status == 201:
                uploads[reply.json()["id"]] = sha256(data)
                return True
            return False

        def downloader(i):
            return client.get("/v1/files/%s/content" % seed["id"]).status == 200

        def runner(session_id):
            def step(i):
                reply = client.execute(session_id, "%d * 2" % i)
                if reply.status == 200:
                    executions[reply.json()["id"]] = str(i * 2)
                    return True
                return False
            return step

        loops = ([Loop(uploader) for _ in range(3)] + [Loop(downloader) for _ in range(3)] +
                 [Loop(runner(s)) for s in sessions])
        for loop in loops:
            loop.start()
        try:
            self.assertTrue(wait_until(lambda: sum(l.done for l in loops) >= 300 and
                                       all(l.done >= 5 for l in loops), 90),
                            "the requests did not get under way: %r" % [l.done for l in loops])
            self.kill9()
        finally:
            for loop in loops:
                loop.stop.set()
        for loop in loops:
            loop.join(30)

        note("answered before the kill: %d uploads, %d executions, %d downloads", len(uploads),
             len(executions), sum(l.done for l in loops[3:6]))
        client = self.restart()
        files = {f["id"]: f for f in self.check_invariants()}
        for file_id, digest in uploads.items():
            self.assertIn(file_id, files, "an upload answered 201 is lost")
            self.assertEqual(files[file_id]["sha256"], digest)
        upload_events = {e["target"] for e in audit_events(client, "file.upload")}
        self.assertEqual(upload_events, set(files),
                         "file records and file.upload events differ")
        run_events = {e["target"] for e in audit_events(client, "execution.run")}
        recorded = set()
        for session_id in sessions:
            recorded |= {e["id"] for e in list_all(client,
                                                   "/v1/sessions/%s/executions" % session_id)}
        self.assertEqual(run_events, recorded, "execution records and execution.run events "
                         "differ")
        # A download is audited before its first byte goes out: every answered one has its event.
        downloads = [e for e in audit_events(client, "file.download") if e["target"] == seed["id"]]
        self.assertGreaterEqual(len(downloads), sum(l.done for l in loops[3:6]))
        for execution_id, text in executions.items():
            self.assertIn(execution_id, recorded, "an execution answered 200 is lost")
            record = expect(client.get("/v1/executions/" + execution_id), 200, "GET execution")
            self.assertEqual(result_text(record), text, record)
        self.stop()


# --- a full disk -----------------------------------------------------------------------------


class TestFullDisk(FaultTestCase):
    """The data dir on a 64 MiB tmpfs. An upload larger than the free space gets 507 with a
    message saying what to do, and leaves nothing. With the disk then filled to the last byte,
    a cell that writes 24 MiB to /mnt/data — which is the session's own quota'd tmpfs under the
    runtime dir, not the data dir — runs, but its file cannot be stored: the answer says so
    (a skipped artifact with the reason, or 507), never a 500 or a record without bytes. Once
    space is freed the same server serves again. Then a crash on the full disk: a start on it
    refuses clearly (or serves and refuses writes clearly); with space again, a restart and the
    invariants."""

    SIZE_MB = 64

    def setUp(self):
        super().setUp()
        self.mount = None

    def tearDown(self):
        try:
            if self.server and self.server.proc and self.server.proc.poll() is None:
                self.server.stop(timeout=30)
        finally:
            try:
                if self.mount and subprocess.run(["umount", self.mount]).returncode != 0:
                    subprocess.run(["umount", "-l", self.mount])
            finally:
                super().tearDown()

    def mount_tmpfs(self):
        self.mount = os.path.join(self.work, "disk")
        os.makedirs(self.mount)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % self.SIZE_MB,
                        "tmpfs", self.mount], check=True)
        return self.mount

    def assertInsufficientStorage(self, reply, what):
        self.assertNotEqual(reply.status, 500, "%s: %r" % (what, reply))
        error = self.assertError(reply, 507, "insufficient_storage")
        self.assertRegex(error["message"], r"(?i)space|full", reply)
        self.assertRegex(error["message"], r"(?i)free|retry|operator", reply)

    def fill(self, path):
        """Writes `path` until the file system has no byte left; returns its size."""
        written = 0
        with open(path, "wb", buffering=0) as f:
            for size in (1 << 20, 4096, 1):
                block = b"\0" * size
                while True:
                    try:
                        n = f.write(block)
                    except OSError:
                        break
                    written += n or 0
                    if not n:
                        break
        return written

    def test_full_disk(self):
        mount = self.mount_tmpfs()
        self.new_server(os.path.join(mount, "data"))
        os.makedirs(self.data)
        client = self.start()
        kept = expect(client.upload_raw("kept.txt", b"kept\n" * 1000), 201, "upload kept")
        session_id = self.new_session(client)
        self.run_ok(client, session_id, "x = 41")

        # An upload larger than the free space.
        free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
        upload = StreamedUpload(client, "huge.csv", free + (16 << 20))
        upload.start()
        try:
            reply = upload.response()
        finally:
            upload.close()
        upload.join(30)
        note("an upload larger than the free space: %r", reply)
        self.assertInsufficientStorage(reply, "an upload larger than the free space")
        self.assertEqual(os.listdir(os.path.join(self.data, "files", "tmp")), [],
                         "the refused upload's temporary file is left")
        names = [f["filename"] for f in list_all(client, "/v1/files")]
        self.assertEqual(names, ["kept.txt"])
        self.assertGreater(os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize, free // 2,
                           "the refused upload's bytes still take the disk")

        # The disk full to the last byte; a cell writes a file bigger than anything left.
        filler = os.path.join(self.data, "filler")
        note("filled the disk with %d bytes; %d left", self.fill(filler),
             os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize)
        try:
            reply = client.execute(session_id,
                                   "with open('/mnt/data/big.bin', 'wb') as f:\n"
                                   "    f.write(bytes(24 << 20))\nx + 1")
            note("the cell on a full disk: %r", reply)
            self.assertNotEqual(reply.status, 500, reply)
            if reply.status == 200:
                record = reply.json()
                self.assertEqual(record["status"], "ok", record)
                self.assertEqual(result_text(record), "42", record)
                self.assertNotIn("big.bin", [a["filename"] for a in record["artifacts"]], record)
                skipped = {s["path"]: s["reason"] for s in record.get("artifacts_skipped", [])}
                self.assertIn("/mnt/data/big.bin", skipped, record)
                self.assertRegex(skipped["/mnt/data/big.bin"], r"(?i)space|full", record)
            else:
                self.assertInsufficientStorage(reply, "a cell whose artifact cannot be stored")
            # An upload while nothing is left: refused clearly too.
            self.assertInsufficientStorage(client.upload_raw("late.txt", b"late\n" * 4096),
                                           "an upload on a full disk")
            self.assertEqual(client.get("/healthz").status, 200)

            # Room for the records but not for the file: the cell is on record, and its answer
            # names the file it could not keep and why.
            os.truncate(filler, os.path.getsize(filler) - (4 << 20))
            reply = client.execute(session_id,
                                   "with open('/mnt/data/big2.bin', 'wb') as f:\n"
                                   "    f.write(bytes(24 << 20))\nx + 1")
            note("the cell with 4 MiB left: %r", reply)
            record = expect(reply, 200, "a cell whose artifact does not fit")
            self.assertEqual(record["status"], "ok", record)
            self.assertEqual([a["filename"] for a in record["artifacts"]], [], record)
            skipped = {s["path"]: s["reason"] for s in record.get("artifacts_skipped", [])}
            self.assertIn("/mnt/data/big2.bin", skipped, record)
            self.assertRegex(skipped["/mnt/data/big2.bin"], r"(?i)storage is full", record)
            self.assertEqual(os.listdir(os.path.join(self.data, "files", "tmp")), [])
        finally:
            os.unlink(filler)

        # Space again: the same server goes on.
        again = expect(client.upload_raw("again.txt", b"again\n" * 1000), 201, "upload again")
        record = self.run_ok(client, session_id, "x + 1")
        self.assertEqual(result_text(record), "42")
        other = self.new_session(client)
        self.run_ok(client, other, "open('/mnt/data/out.txt', 'w').write('out')")
        names = {f["filename"] for f in self.check_invariants(data_mount=mount)}
        self.assertTrue({"kept.txt", "again.txt", "out.txt"} <= names, names)
        self.assertFalse({"big.bin", "big2.bin", "huge.csv", "late.txt"} & names, names)

        # A crash while the disk is full, and a start on the full disk: the server refuses to
        # start and says why, or starts and refuses writes clearly. Once space is freed, it
        # starts and the invariants hold.
        self.fill(filler)
        self.kill9()
        try:
            self.server.start(listen_timeout=60, ready_timeout=60)
        except RuntimeError:
            self.assertEqual(self.server.proc.wait(30), 1, self.server.log_tail(5))
            self.server._reader.join(10)  # Its stdout is at its end.
            self.server.proc.stdout.close()
            last = self.server.log_tail(1)
            note("a start on the full disk: %s", last.splitlines()[-1])
            self.assertRegex(last, r"(?i)no space left|is full", last)
            self.assertRegex(last, r"(?i)free space", last)
        else:
            note("a start on the full disk: it serves")
            self.assertInsufficientStorage(self.server.client().upload_raw("full.txt", b"x\n"),
                                           "an upload after a start on a full disk")
            self.stop()
        finally:
            os.unlink(filler)
        client = self.restart()
        files = {f["id"]: f for f in self.check_invariants(data_mount=mount)}
        self.assertIn(kept["id"], files)
        self.assertIn(again["id"], files)
        self.stop()


# --- the zygote ------------------------------------------------------------------------------


class TestZygoteKilled(FaultTestCase):
    """kill -9 of the pool's zygote while one session runs a cell and another holds state. The
    sessions do not depend on the zygote (docs/sandbox.md): they go on, or — if they cannot —
    end with a recorded reason. New sessions keep coming: the pool starts a new zygote."""

    def test_zygote_killed(self):
        client = self.start()
        server_pid = self.server.proc.pid
        idle = self.new_session(client)
        self.run_ok(client, idle, "x = 41")
        busy = self.new_session(client)
        answer = {}

        def slow():
            answer["reply"] = client.execute(
                busy, "import time\nopen('/mnt/data/started', 'w').close()\ntime.sleep(4)\n"
                "'done'", timeout_s=60, timeout=90)

        thread = threading.Thread(target=slow, daemon=True)
        thread.start()
        self.wait_for_file(client, busy, "started")
        zygotes = zygotes_of(server_pid)
        self.assertEqual(len(zygotes), 1, "want one zygote (one pool): %r" %
                         [describe(z) for z in zygotes])
        os.kill(zygotes[0][0], signal.SIGKILL)
        self.assertTrue(wait_until(lambda: not alive(zygotes[0]), 10), "the zygote lives on")

        def went_on_or_ended(session_id, reply, want):
            if reply.status == 200:
                record = reply.json()
                self.assertEqual(record["status"], "ok", record)
                self.assertEqual(result_text(record), want, record)
                return "went on"
            self.assertEqual(reply.status, 410, reply)
            session = expect(client.get("/v1/sessions/" + session_id), 200, "GET session")
            self.assertEqual(session["status"], "ended", session)
            self.assertTrue(session["end_reason"], session)
            return "ended: " + session["end_reason"]

        thread.join(60)
        self.assertIn("reply", answer, "the running cell got no answer")
        note("the running session after the zygote died: %s",
             went_on_or_ended(busy, answer["reply"], "'done'"))
        note("the idle session after the zygote died: %s",
             went_on_or_ended(idle, client.execute(idle, "x + 1"), "42"))

        # New sessions: the ready one, then cold ones, which need a live zygote.
        for n in range(3):
            reply = client.create_session()
            self.assertEqual(reply.status, 201, "new session %d after the zygote died: %r" %
                             (n, reply))
            record = self.run_ok(client, reply.json()["id"], "6 * 7")
            self.assertEqual(result_text(record), "42")
        fresh = wait_until(lambda: zygotes_of(server_pid), 30)
        self.assertTrue(fresh, "no zygote runs any more")
        self.assertNotEqual(fresh[0], zygotes[0])
        self.assertTrue(wait_until(lambda: client.get("/readyz").status == 200, 60),
                        "the pool did not fill again")
        self.check_invariants()
        self.stop()
        self.restart()
        self.check_invariants()
        self.stop()


# --- SQLite busy -----------------------------------------------------------------------------

LOCKER = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
print("released", flush=True)
"""


class TestSqliteLocked(FaultTestCase):
    """Another process holds `BEGIN EXCLUSIVE` on pycell.db for 11 s — past SQLite's 5 s busy
    timeout twice — while requests of every kind arrive: each waits and succeeds, or gets 503
    with a message and Retry-After; never a 500, never a crash. The first two writers (a DELETE
    of a session, then a cell) are the ones likely to time out. After the release everything
    works, what was answered is on record, what was refused is not, and the records agree with
    the sandboxes: a session the records call active is alive, one whose sandbox was ended is
    ended on record."""

    HOLD_S = 11

    def test_sqlite_locked(self):
        client = self.start(ready_sessions=2)
        seed = expect(client.upload_raw("seed.txt", b"seed\n" * 100), 201, "upload seed")
        runner = self.new_session(client)
        doomed = self.new_session(client)
        locker = subprocess.Popen([sys.executable, "-c", LOCKER,
                                   os.path.join(self.data, "pycell.db"), str(self.HOLD_S)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(locker.stdout.readline().strip(), "locked")
            locked_at = time.monotonic()
            results, answered_at = {}, {}

            def call(name, fn):
                try:
                    results[name] = fn()
                except (OSError, http.client.HTTPException) as e:
                    results[name] = e
                answered_at[name] = time.monotonic() - locked_at

            def list_sessions_after_delete():
                threads[0].join(60)  # The DELETE's answer first; the lock may still be held.
                return client.get("/v1/sessions?limit=200")

            requests = [
                ("delete", lambda: client.delete("/v1/sessions/" + doomed), 1.0),
                ("list-sessions", list_sessions_after_delete, 0.2),
                ("execute", lambda: client.execute(runner, "21 * 2"), 1.0),
                ("upload-1", lambda: client.upload_raw("during-1.txt", b"during 1\n" * 100), 0.2),
                ("upload-2", lambda: client.upload_raw("during-2.txt", b"during 2\n" * 100), 0.2),
                ("download", lambda: client.get("/v1/files/%s/content" % seed["id"]), 0.2),
                ("list", lambda: client.get("/v1/files"), 0.2),
                ("create", lambda: client.create_session(), 0.2),
            ]
            threads = []
            for name, fn, pause in requests:
                threads.append(threading.Thread(target=call, args=(name, fn), daemon=True))
                threads[-1].start()
                time.sleep(pause)
            for t in threads:
                t.join(90)
            self.assertLess(time.monotonic() - locked_at, self.HOLD_S + 40)
            self.assertEqual(locker.wait(30), 0)
        finally:
            if locker.poll() is None:
                locker.kill()
                locker.wait()
            locker.stdout.close()
        self.assertEqual(client.get("/healthz").status, 200)

        refused = []
        for name, reply in sorted(results.items()):
            note("%s during the lock (answered %.1f s after it began): %r", name,
                 answered_at.get(name, -1), reply)
            self.assertIsInstance(reply, pycell_server.Reply, "%s: %r" % (name, reply))
            if reply.status == 503:
                error = self.assertError(reply, 503, "unavailable")
                self.assertIn("busy", error["message"], reply)
                self.assertTrue(reply.header("retry-after"), reply)
                refused.append(name)
            else:
                self.assertLess(reply.status, 300, "%s: %r" % (name, reply))
        note("refused while the lock was held: %s", refused or "none")

        # Everything works after the release.
        after = expect(client.upload_raw("after.txt", b"after\n"), 201, "upload after")
        fresh = self.new_session(client)
        self.assertEqual(result_text(self.run_ok(client, fresh, "6 * 7")), "42")
        names = {f["filename"] for f in list_all(client, "/v1/files")}
        for n in ("1", "2"):
            reply = results["upload-" + n]
            if reply.status == 201:
                self.assertIn("during-%s.txt" % n, names)
            else:
                self.assertNotIn("during-%s.txt" % n, names)
        reply = results["execute"]
        executions = {e["id"] for e in list_all(client, "/v1/sessions/%s/executions" % runner)}
        if reply.status == 200:
            self.assertIn(reply.json()["id"], executions)
        self.assertEqual(result_text(self.run_ok(client, runner, "40 + 2")), "42")
        # A DELETE answered 200 ended the session, on record too; one answered 503 either did
        # not end it (it still runs cells) or ended it on record with a reason.
        reply = results["delete"]
        session = expect(client.get("/v1/sessions/" + doomed), 200, "GET the deleted session")
        if reply.status == 200 and results["list-sessions"].status == 200:
            # Readers are not blocked (WAL): a list answered while the end still waited for the
            # lock shows it ended too, as GET does.
            listed = {s["id"]: s for s in results["list-sessions"].json()["data"]}
            self.assertEqual(listed[doomed]["status"], "ended", listed.get(doomed))
            note("the list answered %.1f s into the lock shows the deleted session %s",
                 answered_at["list-sessions"], listed[doomed]["status"])
        if reply.status == 200:
            self.assertEqual(reply.json()["status"], "ended", "DELETE answered 200 with %r" %
                             reply.json())
            self.assertEqual(session["status"], "ended", "DELETE answered 200 but the session "
                             "is on record as %r" % session)
            self.assertEqual(session["end_reason"], "closed", session)
        elif session["status"] == "active":
            self.assertEqual(result_text(self.run_ok(client, doomed, "1 + 1")), "2")
        else:
            self.assertTrue(session["end_reason"], session)
        # Whatever was answered, the records agree with the sandboxes (before any restart).
        self.check_invariants()
        self.stop()
        self.restart()
        files = {f["filename"] for f in self.check_invariants()}
        self.assertIn(after["filename"], files)
        self.stop()


# --- the clock -------------------------------------------------------------------------------

CLOCK_CONFIG = """
[[pools]]
name = "default"
ready_sessions = 1

[pools.limits]
idle_timeout_s = 6
active_lifetime_s = 600
execution_timeout_s = 60
max_execution_timeout_s = 600
"""


class TestClockJump(FaultTestCase):
    """The server's wall clock jumps an hour forward (libfaketime, Debian's `faketime`), past
    the idle timeout (6 s) and the lifetime (600 s) of its sessions. Idle and lifetime are
    durations, measured on the monotonic clock, so the jump ends nothing by itself: an idle
    session lives on until it has really been idle for 6 s, then ends with reason idle; a
    session whose 10 s cell runs across the jump is busy, so the idle rule spares it, and the
    cell's duration is its real one. The records agree; restarted on the real clock (an hour
    back), the invariants hold.

    The monotonic clock is not jumped: libfaketime 0.9.10 moves CLOCK_MONOTONIC onto the wall
    clock's epoch, and the server's timed waits (std::condition_variable, through
    pthread_cond_clockwait, which libfaketime does not intercept) hand those faked deadlines to
    the kernel, which waits on the real monotonic clock: every timed wait of the server —
    among them the pool's one-second expiry tick — would last decades, and nothing would expire
    unless a request woke the pool. The idle rule against a jumped monotonic clock is covered by
    the unit tests' FakeClock (src/session/session_test.cc, src/service/service_test.cc)."""

    JUMP_S = 3600
    IDLE_S = 6

    def test_wall_clock_jump(self):
        if not os.path.exists(LIBFAKETIME):
            self.skipTest("libfaketime is not installed (Debian's faketime package; "
                          "scripts/install-deps.sh installs it)")
        config = os.path.join(self.work, "pycell.toml")
        with open(config, "w") as f:
            f.write(CLOCK_CONFIG)
        offset_file = os.path.join(self.work, "faketime.rc")
        with open(offset_file, "w") as f:
            f.write("+0\n")
        env = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": offset_file,
               "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
               "NO_FAKE_STAT": "1"}
        client = self.start(extra_args=("--config", config), ready_sessions=None, env=env)
        server_pid = self.server.proc.pid
        with open("/proc/%d/maps" % server_pid) as f:
            self.assertIn("libfaketime", f.read(), "the server did not load libfaketime")
        zygotes = zygotes_of(server_pid)
        self.assertTrue(zygotes)
        for zygote in zygotes:  # Its environment is built from scratch: no LD_PRELOAD.
            with open("/proc/%d/maps" % zygote[0]) as f:
                self.assertNotIn("libfaketime", f.read(), "the zygote inherited libfaketime")

        idle = self.new_session(client)
        busy = self.new_session(client)
        answer = {}

        def slow():
            answer["reply"] = client.execute(
                busy, "import time\nopen('/mnt/data/started', 'w').close()\ntime.sleep(10)\n"
                "'survived'", timeout_s=600, timeout=120)

        self.run_ok(client, idle, "x = 41")
        last_cell = time.monotonic()
        thread = threading.Thread(target=slow, daemon=True)
        thread.start()
        self.wait_for_file(client, busy, "started")
        with open(offset_file, "w") as f:
            f.write("+%d\n" % self.JUMP_S)
        jumped_at = time.time()
        # The server's records now carry the jumped wall time; its uptime counts elapsed time.
        marker = expect(client.upload_raw("jump.txt", b"after the jump\n"), 201, "upload")
        stamped = datetime.datetime.strptime(marker["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        stamped = stamped.replace(tzinfo=datetime.timezone.utc).timestamp()
        self.assertGreater(stamped, jumped_at + self.JUMP_S - 60,
                           "the server's wall clock did not jump: %r" % marker)
        uptime = expect(client.get("/v1/service"), 200, "GET /v1/service").get("uptime_s")
        self.assertLess(uptime, self.JUMP_S / 2, "uptime followed the wall clock's jump")

        # Past the idle timeout and the lifetime by the wall clock, not by elapsed time: a few
        # of the pool's expiry passes (one a second) end nothing.
        time.sleep(2)
        self.assertLess(time.monotonic() - last_cell, self.IDLE_S - 1, "too slow to tell")
        for session_id in (idle, busy):
            session = expect(client.get("/v1/sessions/" + session_id), 200, "GET session")
            self.assertEqual(session["status"], "active", "the wall clock's jump ended %r" %
                             session)

        # Really idle for 6 s: ended, reason idle, at the (jumped) wall time.
        def ended():
            session = expect(client.get("/v1/sessions/" + idle), 200, "GET session")
            return session if session["status"] == "ended" else None
        session = wait_until(ended, self.IDLE_S + 10, 0.2)
        self.assertTrue(session, "the idle session did not end after %d s idle" % self.IDLE_S)
        self.assertEqual(session["end_reason"], "idle", session)
        self.assertGreaterEqual(time.monotonic() - last_cell, self.IDLE_S)
        ended_ms = rfc3339_ms(session["ended_at"])
        self.assertGreaterEqual(ended_ms, (jumped_at + self.JUMP_S - 5) * 1000, session)
        self.assertLess(ended_ms, (time.time() + self.JUMP_S + 5) * 1000, session)
        self.assertError(client.execute(idle, "x"), 410, "session_expired")

        # The busy session: idle for longer than 6 s by its last cell's start, but busy.
        self.assertEqual(expect(client.get("/v1/sessions/" + busy), 200, "GET")["status"],
                         "active")
        thread.join(60)
        self.assertIn("reply", answer, "the running cell got no answer")
        record = expect(answer["reply"], 200, "the cell across the jump")
        self.assertEqual(record["status"], "ok", record)
        self.assertEqual(result_text(record), "'survived'", record)
        self.assertLess(record["duration_ms"], 30_000, "a duration is elapsed time, not the "
                        "wall clock's jump: %r" % record)
        self.assertEqual(result_text(self.run_ok(client, busy, "6 * 7")), "42")
        session = expect(client.get("/v1/sessions/" + busy), 200, "GET")
        self.assertGreaterEqual(rfc3339_ms(session["last_active_at"]),
                                (jumped_at + self.JUMP_S - 5) * 1000, session)
        events = [e for e in audit_events(client, "session.end") if e["target"] == idle]
        self.assertEqual([e["detail"].get("reason") for e in events], ["idle"], events)
        self.run_ok(client, self.new_session(client), "1")
        self.check_invariants()
        self.stop()
        # Restarted on the real clock: an hour back.
        self.restart(extra_args=("--config", config), ready_sessions=None)
        self.check_invariants()
        self.stop()


def rfc3339_ms(text):
    """Milliseconds since the epoch of an RFC 3339 time the server wrote ("…Z")."""
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


# --- main ------------------------------------------------------------------------------------


def main():
    global PYCELL
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    if os.geteuid() != 0:
        sys.exit("test_faults.py needs root (sessions, tmpfs mounts, cgroups)")
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()

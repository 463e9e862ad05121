#!/usr/bin/python3
"""pycell's security suite: attack cases as data, run against the real binary.

Usage:
  run_cases.py --pycell PATH --cases DIR --state-dir DIR [--runtime-dir DIR] [-k SUBSTRING] [--case-timeout S] [-v]

Each case is a Python file `NN_short_name.py` in DIR, run in a fresh session with
`pycell run CASE --json --state-dir DIR <args>`. It opens with header comment lines:

  # case: <one line: what the attack is>
  # defence: <which protection should stop it>
  # expect: <rule>            (one or more lines; every rule must hold for every run)
  # args: <extra pycell flags>  (optional, e.g. --timeout 5 --memory 128m)
  # runs: <N> [parallel]      (optional; default 1. N sessions, one after the other or at once)
  # known-hole: <why>         (optional) a hole this case shows that is not fixed yet (the README's
                              "Failing, known" says which): its failure is reported as
                              `KNOWN-HOLE name` and does not fail the suite; if it passes, the
                              suite fails until the line is removed

Expectation rules:
  blocked                    status ok, stdout contains "BLOCKED" (the attack was tried and failed)
  status=<s>[|<s>...]        the record's status is one of these (ok, error, timeout, crashed)
  end-reason=<reason>        the record's session_end_reason (e.g. memory)
  stdout-contains=<text>     the record's stdout contains text
  differs-between-sessions   every run is ok with output, and no stdout line appears in two runs
  out-files=<a>[,<b>...]     (with `--out @OUT_DIR@`) the out folder holds exactly these regular
                             files (paths relative to it) and nothing that is not a file or folder
  out-lacks=<text>           (with `--out @OUT_DIR@`) no file in the out folder contains text
  out-bytes-at-most=<n>      (with `--out @OUT_DIR@`) the out folder's files hold at most n bytes
                             in all (their sizes: what the server exported)
  out-count-at-most=<n>      (with `--out @OUT_DIR@`) the out folder holds at most n files
  stdout-at-most=<n>         the record's stdout is at most n bytes (UTF-8)
  stderr-contains=<text>     the record's stderr contains text
  result-contains=<text>     a text/plain output of the record (the cell's value, a display)
                             contains text
  finishes-within=<s>        pycell returns within s seconds of its start (it is killed at s + 5,
                             so a hang costs no more than that)
  runs-overlap               (with `runs: N parallel`) the runs' cells were all running at one
                             moment (from each record's started_at and duration_ms), so a case
                             that looks for the other session really had one to find
  host-absent=<glob>         nothing on the host matches glob after the case (where an escape
                             would have written)

Rules that hold for every case, whatever it expects:
  - pycell prints one JSON record and never fails itself (exit code 2), and exit code 0 goes with
    status ok only;
  - "ESCAPED" never appears in stdout (a case prints `ESCAPED: <detail>` when an attack worked);
  - after the case the host is clean: no session folder left under <runtime-dir>/sessions, no cgroup
    of the case's sessions left under /sys/fs/cgroup/{memory,pids,cpu}/pycell/, no process of its
    sessions running as a subordinate uid, and nothing reached the decoy listeners the runner keeps
    on the host (see below). Cgroups and processes are matched by the records' session ids, so
    other pycell users of the same machine are not counted.

Placeholders replaced in the code, the args and the expectations before a run (the case runs from
a temporary copy):
  @STATE_DIR@     the absolute --state-dir
  @RUNNER_PID@    this runner's host pid
  @HOST_TCP_PORT@ a TCP port listening on the host's 127.0.0.1 (decoy: must stay unreachable)
  @HOST_UDP_PORT@ a UDP port bound on the host's 127.0.0.1 (decoy)
  @HOST_ABSTRACT@ the name of an abstract unix socket listening on the host (decoy)
  @HOST_SYSV_KEY@ the key of a System V shared memory segment on the host (decoy)
  @HOST_IPS@      the host's own non-loopback IPv4 addresses, comma-separated
  @HOST_IA32@     "1" when this host's kernel runs 32-bit system calls (int 0x80) for a 64-bit
                  process, "0" when it has no 32-bit emulation (CONFIG_IA32_EMULATION off, or
                  ia32_emulation=0 on Linux 6.7+): int 0x80 then faults (SIGSEGV) in the kernel
                  before any seccomp filter sees it, probed by the runner in a child on the host
  @HOST_SECRET_FILE@ a host file (mode 0644, in a world-searchable folder) holding @HOST_SECRET@
  @HOST_SECRET@   a random marker: no session may ever produce it
  @HOST_SECRET_DIR@ the folder of @HOST_SECRET_FILE@ (removed with everything in it at the end)
  @OUT_DIR@       a fresh empty folder, per run, removed afterwards
  @HOST_ESCAPE_NAME@ a name unique to this runner (pycell-sec-escape-<pid>): escapes aim at
                  /tmp/<it>... and `host-absent=/tmp/@HOST_ESCAPE_NAME@*` checks none landed
  @EVIL_ZIP@, @EVIL_TAR@ hostile archives the runner builds (for `--file`, so they arrive in
                  /mnt/data as evil.zip and evil.tar): members named ../../..(x12)/tmp/
                  @HOST_ESCAPE_NAME@-* and /tmp/@HOST_ESCAPE_NAME@-*, symlinks to the host secret
                  file, its folder, /usr/lib and upwards with members written through them, hard
                  links to /etc/shadow and the secret file, a device node and a setuid file; see
                  hostile_archives() for the exact members

pycell runs with the runner's environment plus PYCELL_SEC_CANARY=canary-<random>, a variable no
session may see.

Output: one line per case, `PASS name (defence)` or `FAIL name: why` followed by the record's
stdout/stderr/error, then a last case `host_clean`, a runtime line and finally `N passed, M failed`.
Exit code 0 only when every case passed. Cases run one after the other.
"""

import argparse
import calendar
import ctypes
import glob
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

HEADER_RE = re.compile(r"^#\s*([a-z-]+):\s*(.*?)\s*$")
KNOWN_STATUSES = {"ok", "error", "timeout", "crashed"}
IPC_CREAT = 0o1000
IPC_RMID = 0
CANARY_ENV = dict(os.environ, PYCELL_SEC_CANARY="canary-" + os.urandom(8).hex())


class Case:
    def __init__(self, path):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.what = ""
        self.defence = ""
        self.expects = []
        self.args = []
        self.runs = 1
        self.parallel = False
        self.problems = []
        self.known_hole = ""
        with open(path, encoding="utf-8") as f:
            self.code = f.read()
        for line in self.code.splitlines():
            if not line.startswith("#"):
                break
            m = HEADER_RE.match(line)
            if not m:
                continue
            key, value = m.group(1), m.group(2)
            if key == "case":
                self.what = value
            elif key == "defence":
                self.defence = value
            elif key == "expect":
                self.expects.append(value)
            elif key == "args":
                self.args = value.split()
            elif key == "known-hole":
                self.known_hole = value
            elif key == "runs":
                parts = value.split()
                self.runs = int(parts[0])
                self.parallel = len(parts) > 1 and parts[1] == "parallel"
        if not self.what:
            self.problems.append("header has no '# case:' line")
        if not self.defence:
            self.problems.append("header has no '# defence:' line")
        if not self.expects:
            self.problems.append("header has no '# expect:' line")
        for rule in self.expects:
            problem = check_rule_syntax(rule)
            if problem:
                self.problems.append(problem)
        if any(r == "differs-between-sessions" for r in self.expects) and self.runs < 2:
            self.runs = 2


def check_rule_syntax(rule):
    if rule in ("blocked", "differs-between-sessions", "runs-overlap"):
        return None
    key, sep, value = rule.partition("=")
    if not sep or not value:
        return "unknown expectation '%s'" % rule
    if key == "status":
        bad = [s for s in value.split("|") if s not in KNOWN_STATUSES]
        return "unknown status in '%s'" % rule if bad else None
    if key in ("end-reason", "stdout-contains", "out-files", "out-lacks", "stderr-contains",
               "result-contains", "host-absent"):
        return None
    if key in ("out-bytes-at-most", "out-count-at-most", "stdout-at-most", "finishes-within"):
        return None if value.isdigit() else "'%s' needs a whole number" % rule
    return "unknown expectation '%s'" % rule


class Decoys:
    """Things on the host that a session must never reach: a TCP listener and a UDP socket on the
    host's loopback, an abstract unix socket, a System V shared memory segment."""

    def __init__(self):
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.tcp.setblocking(False)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setblocking(False)
        self.abstract_name = "pycell-sec-decoy-%d" % os.getpid()
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0" + self.abstract_name)
        self.unix.listen(16)
        self.unix.setblocking(False)
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.sysv_key = 0x50430000 | (os.getpid() & 0xFFFF)
        self.shm_id = self.libc.shmget(self.sysv_key, 4096, IPC_CREAT | 0o666)
        self.secret = "HOSTSECRET-" + os.urandom(12).hex()
        self.secret_dir = tempfile.mkdtemp(prefix="pycell-sec-secret-")
        os.chmod(self.secret_dir, 0o755)
        self.secret_file = os.path.join(self.secret_dir, "secret.txt")
        with open(self.secret_file, "w") as f:
            f.write(self.secret + "\n")
        os.chmod(self.secret_file, 0o644)

    def substitutions(self):
        return {
            "@HOST_TCP_PORT@": str(self.tcp.getsockname()[1]),
            "@HOST_UDP_PORT@": str(self.udp.getsockname()[1]),
            "@HOST_ABSTRACT@": self.abstract_name,
            "@HOST_SYSV_KEY@": str(self.sysv_key),
            "@HOST_SECRET_FILE@": self.secret_file,
            "@HOST_SECRET_DIR@": self.secret_dir,
            "@HOST_SECRET@": self.secret,
        }

    def reached(self):
        """What reached a decoy since the last call (empty list when nothing did)."""
        hits = []
        for name, sock in (("host TCP listener", self.tcp), ("host abstract socket", self.unix)):
            while True:
                try:
                    conn, peer = sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                hits.append("%s accepted a connection from %r" % (name, peer))
                conn.close()
        while True:
            try:
                data, peer = self.udp.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            hits.append("host UDP socket received %d bytes from %r" % (len(data), peer))
        return hits

    def close(self):
        for s in (self.tcp, self.udp, self.unix):
            s.close()
        if self.shm_id >= 0:
            self.libc.shmctl(self.shm_id, IPC_RMID, None)
        shutil.rmtree(self.secret_dir, ignore_errors=True)


def host_runs_int80():
    """'1' when int 0x80 (i386 getpid) runs for a 64-bit process on this host, '0' when the
    kernel refuses it (no 32-bit emulation: the child dies of SIGSEGV). Tried in a child."""
    import ctypes
    import mmap
    pid = os.fork()
    if pid == 0:
        try:
            code = bytes([0xB8, 0x14, 0x00, 0x00, 0x00, 0xCD, 0x80, 0xC3])  # getpid; int 0x80
            buf = mmap.mmap(-1, mmap.PAGESIZE,
                            prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
            buf.write(code)
            addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
            ctypes.CFUNCTYPE(ctypes.c_int)(addr)()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return "1" if os.WIFEXITED(status) else "0"


def host_ipv4_addresses():
    import fcntl
    import struct
    addresses = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _, name in socket.if_nameindex():
            if name == "lo":
                continue
            try:
                packed = fcntl.ioctl(probe.fileno(), 0x8915,  # SIOCGIFADDR
                                     struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            addresses.append(socket.inet_ntoa(packed[20:24]))
    finally:
        probe.close()
    return addresses


def hostile_archives(folder, escape_name, secret_file):
    """Builds evil.zip and evil.tar in folder (readable by all) and returns their paths. Every
    member that could land outside the extraction folder aims at /tmp/<escape_name>-*, which the
    cases check on the host with `host-absent`."""
    up = "../" * 12
    zip_path = os.path.join(folder, "evil.zip")
    with zipfile.ZipFile(zip_path, "w") as z:
        z.writestr(up + "tmp/%s-zip" % escape_name, "written by a ../ zip member\n")
        z.writestr("/tmp/%s-zip-absolute" % escape_name, "written by an absolute zip member\n")
        z.writestr("ok/normal.txt", "an ordinary member\n")
        link = zipfile.ZipInfo("ok/link-to-secret")
        link.create_system = 3  # Unix, so external_attr holds a mode.
        link.external_attr = (0o120777 << 16)  # S_IFLNK: a symlink whose target is the data.
        z.writestr(link, secret_file)
    tar_path = os.path.join(folder, "evil.tar")
    with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as t:
        def add(name, kind=tarfile.REGTYPE, data=b"", linkname="", mode=0o644, devmajor=0,
                devminor=0):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname = kind, mode, linkname
            info.devmajor, info.devminor = devmajor, devminor
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        add(up + "tmp/%s-tar" % escape_name, data=b"written by a ../ tar member\n")
        add("/tmp/%s-tar-absolute" % escape_name, data=b"written by an absolute tar member\n")
        add("link-to-secret", tarfile.SYMTYPE, linkname=secret_file)
        add("link-to-secret-dir", tarfile.SYMTYPE, linkname=os.path.dirname(secret_file))
        add("link-to-secret-dir/%s-planted" % escape_name,
            data=b"written through a symlink to a host folder\n")
        add("link-to-usr", tarfile.SYMTYPE, linkname="/usr/lib")
        add("link-to-usr/%s-planted" % escape_name, data=b"written through a symlink to /usr\n")
        add("link-up", tarfile.SYMTYPE, linkname=up.rstrip("/"))
        add("link-up/tmp/%s-tar-via-link" % escape_name, data=b"written through link-up\n")
        add("hardlink-to-shadow", tarfile.LNKTYPE, linkname="/etc/shadow")
        add("hardlink-to-secret", tarfile.LNKTYPE, linkname=secret_file)
        add("dev-mem", tarfile.CHRTYPE, devmajor=1, devminor=1, mode=0o666)
        add("setuid-sh", data=b"#!/bin/sh\nid\n", mode=0o4755)
    for path in (zip_path, tar_path):
        os.chmod(path, 0o644)
    return zip_path, tar_path


def subordinate_uid_range():
    try:
        with open("/etc/subuid") as f:
            for line in f:
                fields = line.strip().split(":")
                if len(fields) == 3 and fields[0] in ("root", "0"):
                    start, count = int(fields[1]), int(fields[2])
                    return start, start + count - 1
    except (OSError, ValueError):
        pass
    return 1000000, 1065535


RUNTIME_DIR = ["/run/pycell-security-suite"]  # Set from --runtime-dir in main().


def leftovers(state_dir, uid_range, session_ids):
    """Everything a finished session must not leave on the host. Cgroups and processes are
    attributed to this suite through the session ids of its records, so that other pycell users of
    the same machine do not count (the session folders are this suite's own state dir anyway)."""
    found = []
    sessions = os.path.join(RUNTIME_DIR[0], "sessions")
    try:
        for entry in sorted(os.listdir(sessions)):
            found.append("session folder %s" % os.path.join(sessions, entry))
    except FileNotFoundError:
        pass
    ids = set(session_ids)
    for controller in ("memory", "pids", "cpu"):
        for sid in sorted(ids):
            path = os.path.join("/sys/fs/cgroup", controller, "pycell", sid)
            if os.path.isdir(path):
                found.append("cgroup %s" % path)
    low, high = uid_range
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or not ids:
            continue
        try:
            with open("/proc/%s/status" % pid) as f:
                status = f.read()
            with open("/proc/%s/cgroup" % pid) as f:
                cgroups = f.read()
        except OSError:
            continue
        uids = []
        for line in status.splitlines():
            if line.startswith("Uid:"):
                uids = [int(u) for u in line.split()[1:]]
        if not any(low <= u <= high for u in uids):
            continue
        owner = [sid for sid in ids if "/pycell/" + sid in cgroups]
        if owner:
            name = status.splitlines()[0].split(":", 1)[1].strip()
            found.append("process %s (%s) of %s running as uid %s" % (pid, name, owner[0], uids))
    return found


def wait_clean(state_dir, uid_range, session_ids, grace=5.0):
    deadline = time.monotonic() + grace
    while True:
        found = leftovers(state_dir, uid_range, session_ids)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


def out_dir_listing(out_dir):
    files, odd = [], []
    for root, dirs, names in os.walk(out_dir):
        for name in dirs + names:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, out_dir)
            if os.path.islink(full):
                odd.append("%s (symlink)" % rel)
            elif os.path.isfile(full):
                if name in names:
                    files.append(rel)
            elif not os.path.isdir(full):
                odd.append("%s (not a file)" % rel)
    return sorted(files), odd


HERE = os.path.dirname(os.path.abspath(__file__))


def inline_includes(code):
    """Replaces each `# include: NAME.py ...` line with the file NAME.py beside this runner
    (helpers several cases share, such as raw system calls)."""
    out = []
    for line in code.split("\n"):
        match = re.match(r"# include: ([a-z_]+\.py)\b", line)
        if match:
            with open(os.path.join(HERE, match.group(1)), encoding="utf-8") as f:
                out.append(f.read())
        else:
            out.append(line)
    return "\n".join(out)


class Run:
    """One session of a case: the pycell process, its record and the placeholders it used."""

    def __init__(self, case, args, subs, workdir, index):
        self.out_dir = tempfile.mkdtemp(prefix="out-", dir=workdir)
        subs = dict(subs, **{"@OUT_DIR@": self.out_dir})
        code = inline_includes(case.code)
        run_args = list(case.args)
        for key, value in subs.items():
            code = code.replace(key, value)
            run_args = [a.replace(key, value) for a in run_args]
        self.code_path = os.path.join(workdir, "%s.%d.py" % (case.name, index))
        with open(self.code_path, "w", encoding="utf-8") as f:
            f.write(code)
        os.chmod(workdir, 0o755)
        os.chmod(self.code_path, 0o644)
        self.argv = [args.pycell, "run", self.code_path, "--json", "--state-dir",
                     args.state_dir, "--runtime-dir", args.runtime_dir] + run_args
        self.expects = []
        for rule in case.expects:
            for key, value in subs.items():
                rule = rule.replace(key, value)
            self.expects.append(rule)
        self.record = None
        self.returncode = None
        self.raw_stdout = ""
        self.raw_stderr = ""
        self.problem = None
        self.proc = None
        self.started = None
        self.elapsed = None
        self.session_id = None
        self.finishes_within = None
        for rule in self.expects:
            if rule.startswith("finishes-within="):
                self.finishes_within = int(rule.partition("=")[2])

    def start(self):
        # The binary may be relinked under us (a build in progress): retry for a while.
        deadline = time.monotonic() + 60
        while True:
            self.started = time.monotonic()
            try:
                self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True, errors="replace", env=CANARY_ENV)
                return
            except OSError as e:
                if time.monotonic() >= deadline:
                    self.problem = "could not start pycell: %s" % e
                    return
                time.sleep(1)

    def finish(self, timeout):
        if self.proc is None:
            return
        if self.finishes_within is not None:
            timeout = min(timeout, self.finishes_within + 5)
        remaining = max(1.0, timeout - (time.monotonic() - self.started))
        try:
            self.raw_stdout, self.raw_stderr = self.proc.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.raw_stdout, self.raw_stderr = self.proc.communicate()
            self.problem = "pycell did not finish within %.0f s (killed)" % timeout
            return
        self.elapsed = time.monotonic() - self.started
        self.returncode = self.proc.returncode
        try:
            self.record = json.loads(self.raw_stdout)
        except ValueError:
            self.problem = "pycell exited %d without a JSON record" % self.returncode
            return
        if not isinstance(self.record, dict):
            self.problem = "pycell's JSON output is not an object"
            self.record = None
            return
        self.session_id = self.record.get("session_id")
        if self.returncode == 2:
            self.problem = "pycell failed itself (exit code 2)"
        elif (self.returncode == 0) != (self.record.get("status") == "ok"):
            self.problem = "exit code %d does not match status %r" % (
                self.returncode, self.record.get("status"))

    def describe(self):
        lines = ["    command: %s" % " ".join(self.argv)]
        if self.record is None:
            lines.append("    exit code: %s" % self.returncode)
            lines.append("    pycell stdout: %s" % indent(self.raw_stdout[-3000:]))
            lines.append("    pycell stderr: %s" % indent(self.raw_stderr[-3000:]))
            return "\n".join(lines)
        r = self.record
        lines.append("    exit code: %s  status: %s  session_end_reason: %s" % (
            self.returncode, r.get("status"), r.get("session_end_reason")))
        lines.append("    stdout: %s" % indent(str(r.get("stdout", ""))[-4000:]))
        lines.append("    stderr: %s" % indent(str(r.get("stderr", ""))[-2000:]))
        error = r.get("error")
        if error:
            tb = "".join(error.get("traceback") or [])
            lines.append("    error: %s: %s" % (error.get("ename"), error.get("evalue")))
            if tb:
                lines.append("    traceback: %s" % indent(tb[-3000:]))
        if self.raw_stderr.strip():
            lines.append("    pycell stderr: %s" % indent(self.raw_stderr[-2000:]))
        return "\n".join(lines)


def indent(text):
    text = text.rstrip("\n")
    if "\n" not in text:
        return text
    return "\n" + "\n".join("      | " + line for line in text.splitlines())


def check_run(case, run):
    """Reasons this run fails its case's expectations (empty when it passes)."""
    if run.problem:
        return [run.problem]
    r = run.record
    why = []
    stdout = str(r.get("stdout", ""))
    status = r.get("status")
    if "ESCAPED" in stdout:
        escaped = [l for l in stdout.splitlines() if "ESCAPED" in l]
        why.append("the attack worked: " + " / ".join(escaped)[:1500])
    for rule in run.expects:
        if rule == "blocked":
            if status != "ok":
                why.append("expected status ok (attack tried and refused), got %r" % status)
            if "BLOCKED" not in stdout:
                why.append("stdout has no BLOCKED line")
        elif rule == "differs-between-sessions":
            if status != "ok" or not stdout.strip():
                why.append("expected status ok with output, got %r" % status)
        else:
            key, _, value = rule.partition("=")
            if key == "status" and status not in value.split("|"):
                why.append("expected status %s, got %r" % (value, status))
            elif key == "end-reason" and r.get("session_end_reason") != value:
                why.append("expected session_end_reason %r, got %r" % (
                    value, r.get("session_end_reason")))
            elif key == "stdout-contains" and value not in stdout:
                why.append("stdout does not contain %r" % value)
            elif key == "out-files":
                want = sorted(v.strip() for v in value.split(",") if v.strip())
                files, odd = out_dir_listing(run.out_dir)
                if files != want:
                    why.append("out folder holds %s, expected %s" % (files, want))
                if odd:
                    why.append("out folder holds %s" % ", ".join(odd))
            elif key == "out-bytes-at-most" or key == "out-count-at-most":
                files, _ = out_dir_listing(run.out_dir)
                if key == "out-count-at-most" and len(files) > int(value):
                    why.append("out folder holds %d files, expected at most %s" % (
                        len(files), value))
                total = sum(os.lstat(os.path.join(run.out_dir, f)).st_size for f in files)
                if key == "out-bytes-at-most" and total > int(value):
                    why.append("out folder holds %d bytes in %d files, expected at most %s" % (
                        total, len(files), value))
            elif key == "stdout-at-most" and len(stdout.encode()) > int(value):
                why.append("stdout holds %d bytes, expected at most %s" % (
                    len(stdout.encode()), value))
            elif key == "stderr-contains" and value not in str(r.get("stderr", "")):
                why.append("stderr does not contain %r" % value)
            elif key == "result-contains":
                texts = [str((o.get("data") or {}).get("text/plain", ""))
                         for o in r.get("outputs") or [] if isinstance(o, dict)]
                if not any(value in t for t in texts):
                    why.append("no text/plain output contains %r (outputs: %s)" % (
                        value, " | ".join(texts)[:500]))
            elif key == "finishes-within" and run.elapsed is not None and run.elapsed > int(value):
                why.append("pycell took %.1f s, expected at most %s" % (run.elapsed, value))
            elif key == "host-absent":
                found = glob.glob(value)
                if found:
                    why.append("found on the host: %s" % ", ".join(sorted(found)))
            elif key == "out-lacks":
                for root, _, names in os.walk(run.out_dir):
                    for name in names:
                        full = os.path.join(root, name)
                        if os.path.isfile(full) and not os.path.islink(full):
                            with open(full, "rb") as f:
                                if value.encode() in f.read():
                                    why.append("out file %s contains %r" % (
                                        os.path.relpath(full, run.out_dir), value))
    return why


def cell_window(record):
    """(start, end) of a record's cell in seconds since the epoch, or None."""
    try:
        stamp, _, millis = str(record["started_at"]).rstrip("Z").partition(".")
        start = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")) + int(millis or 0) / 1000
        return start, start + float(record["duration_ms"]) / 1000
    except (KeyError, ValueError, TypeError):
        return None


def check_between_runs(case, runs):
    why = []
    if "runs-overlap" in case.expects:
        windows = [cell_window(run.record) for run in runs if run.record is not None]
        if len(windows) < 2 or None in windows:
            why.append("runs-overlap: needs two or more records with started_at and duration_ms")
        elif max(w[0] for w in windows) >= min(w[1] for w in windows):
            why.append("the runs' cells never ran at the same time (%s): nothing was tested" % (
                ", ".join("%.1f-%.1f" % w for w in windows)))
    if "differs-between-sessions" not in case.expects:
        return why
    seen = {}
    for i, run in enumerate(runs):
        if run.record is None:
            continue
        for line in str(run.record.get("stdout", "")).splitlines():
            if not line.strip():
                continue
            if line in seen and seen[line] != i:
                why.append("run %d and run %d both printed %r" % (seen[line] + 1, i + 1, line))
            seen.setdefault(line, i)
    return why


def run_case(case, args, subs, uid_range, decoys, all_session_ids):
    if case.problems:
        return case.problems, []
    workdir = tempfile.mkdtemp(prefix="pycell-sec-")
    runs = [Run(case, args, subs, workdir, i) for i in range(case.runs)]
    try:
        if case.parallel:
            for run in runs:
                run.start()
            for run in runs:
                run.finish(args.case_timeout)
        else:
            for run in runs:
                run.start()
                run.finish(args.case_timeout)
        why = []
        for i, run in enumerate(runs):
            prefix = "run %d: " % (i + 1) if len(runs) > 1 else ""
            why += [prefix + w for w in check_run(case, run)]
        why += check_between_runs(case, runs)
        ids = [run.session_id for run in runs if run.session_id]
        all_session_ids.extend(ids)
        why += ["left behind: " + f for f in wait_clean(args.state_dir, uid_range, ids)]
        why += ["host decoy reached: " + h for h in decoys.reached()]
        return why, runs
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description="Run pycell's security cases.")
    parser.add_argument("--pycell", required=True, help="path of the pycell binary")
    parser.add_argument("--cases", required=True, help="folder of NN_name.py cases")
    parser.add_argument("--state-dir", required=True, help="pycell --state-dir for every run")
    parser.add_argument("--runtime-dir", default="/run/pycell-security-suite",
                        help="pycell --runtime-dir for every run (sessions' live folders)")
    parser.add_argument("-k", dest="filter", default="", help="only cases whose name has this")
    parser.add_argument("-v", dest="verbose", action="store_true",
                        help="also show the record of cases that pass")
    parser.add_argument("--case-timeout", type=float, default=120.0,
                        help="seconds one run of a case may take before it is killed")
    args = parser.parse_args()
    args.pycell = os.path.abspath(args.pycell)
    args.state_dir = os.path.abspath(args.state_dir)
    args.runtime_dir = os.path.abspath(args.runtime_dir)
    RUNTIME_DIR[0] = args.runtime_dir

    paths = sorted(os.path.join(args.cases, n) for n in os.listdir(args.cases)
                   if re.match(r"^\d+_.*\.py$", n))
    cases = [Case(p) for p in paths if args.filter in os.path.basename(p)]
    uid_range = subordinate_uid_range()
    decoys = Decoys()
    fixtures = tempfile.mkdtemp(prefix="pycell-sec-fixtures-")
    os.chmod(fixtures, 0o755)
    escape_name = "pycell-sec-escape-%d" % os.getpid()
    evil_zip, evil_tar = hostile_archives(fixtures, escape_name, decoys.secret_file)
    subs = dict(decoys.substitutions(), **{
        "@STATE_DIR@": args.state_dir,
        "@RUNNER_PID@": str(os.getpid()),
        "@HOST_IPS@": ",".join(host_ipv4_addresses()),
        "@HOST_IA32@": host_runs_int80(),
        "@HOST_ESCAPE_NAME@": escape_name,
        "@EVIL_ZIP@": evil_zip,
        "@EVIL_TAR@": evil_tar,
    })
    passed = failed = known = 0
    all_session_ids = []
    started = time.monotonic()
    try:
        before = leftovers(args.state_dir, uid_range, [])
        if before:
            print("note: the state dir was not clean before the suite: " + "; ".join(before))
        for case in cases:
            case_started = time.monotonic()
            why, runs = run_case(case, args, subs, uid_range, decoys, all_session_ids)
            took = time.monotonic() - case_started
            if why and case.known_hole:
                known += 1
                print("KNOWN-HOLE %s: %s  [%.1fs]" % (case.name, case.known_hole, took))
                print("    failed as expected: %s" % "; ".join(why)[:2000])
            elif not why and case.known_hole:
                failed += 1
                print("FAIL %s: passes now; remove its '# known-hole:' line and its entry in the "
                      "README's \"Failing, known\"  [%.1fs]" % (case.name, took))
            elif why:
                failed += 1
                print("FAIL %s: %s  [%.1fs]" % (case.name, "; ".join(why), took))
                print("    case: %s" % case.what)
                for i, run in enumerate(runs):
                    if len(runs) > 1:
                        print("    -- run %d" % (i + 1))
                    print(run.describe())
            else:
                passed += 1
                print("PASS %s (%s)  [%.1fs]" % (case.name, case.defence, took))
                if args.verbose:
                    for run in runs:
                        print(run.describe())
            sys.stdout.flush()

        found = wait_clean(args.state_dir, uid_range, all_session_ids) + decoys.reached()
        if not args.filter or args.filter in "host_clean":
            if found:
                failed += 1
                print("FAIL host_clean: %s" % "; ".join(found))
            else:
                passed += 1
                print("PASS host_clean (no session folder, cgroup or subordinate-uid process "
                      "left; no decoy reached)")
    finally:
        decoys.close()
        shutil.rmtree(fixtures, ignore_errors=True)
        # Escapes were reported by the cases' host-absent rules; leave the host as it was.
        for path in glob.glob("/tmp/%s*" % escape_name) + glob.glob("/usr/lib/%s*" % escape_name):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
    print("suite runtime: %.1f s" % (time.monotonic() - started))
    print("%d passed, %d failed, %d known holes" % (passed, failed, known))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

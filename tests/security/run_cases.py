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

Expectation rules:
  blocked                    status ok, stdout contains "BLOCKED" (the attack was tried and failed)
  status=<s>[|<s>...]        the record's status is one of these (ok, error, timeout, crashed)
  end-reason=<reason>        the record's session_end_reason (e.g. memory)
  stdout-contains=<text>     the record's stdout contains text
  differs-between-sessions   every run is ok with output, and no stdout line appears in two runs
  out-files=<a>[,<b>...]     (with `--out @OUT_DIR@`) the out folder holds exactly these regular
                             files (paths relative to it) and nothing that is not a file or folder
  out-lacks=<text>           (with `--out @OUT_DIR@`) no file in the out folder contains text

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
  @HOST_SECRET_FILE@ a host file (mode 0644, in a world-searchable folder) holding @HOST_SECRET@
  @HOST_SECRET@   a random marker: no session may ever produce it
  @OUT_DIR@       a fresh empty folder, per run, removed afterwards

pycell runs with the runner's environment plus PYCELL_SEC_CANARY=canary-<random>, a variable no
session may see.

Output: one line per case, `PASS name (defence)` or `FAIL name: why` followed by the record's
stdout/stderr/error, then a last case `host_clean`, a runtime line and finally `N passed, M failed`.
Exit code 0 only when every case passed. Cases run one after the other.
"""

import argparse
import ctypes
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HEADER_RE = re.compile(r"^#\s*([a-z]+):\s*(.*?)\s*$")
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
    if rule in ("blocked", "differs-between-sessions"):
        return None
    key, sep, value = rule.partition("=")
    if not sep or not value:
        return "unknown expectation '%s'" % rule
    if key == "status":
        bad = [s for s in value.split("|") if s not in KNOWN_STATUSES]
        return "unknown status in '%s'" % rule if bad else None
    if key in ("end-reason", "stdout-contains", "out-files", "out-lacks"):
        return None
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
        self.session_id = None

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
        remaining = max(1.0, timeout - (time.monotonic() - self.started))
        try:
            self.raw_stdout, self.raw_stderr = self.proc.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.raw_stdout, self.raw_stderr = self.proc.communicate()
            self.problem = "pycell did not finish within %.0f s (killed)" % timeout
            return
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


def check_between_runs(case, runs):
    if "differs-between-sessions" not in case.expects:
        return []
    seen = {}
    why = []
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
    subs = dict(decoys.substitutions(), **{
        "@STATE_DIR@": args.state_dir,
        "@RUNNER_PID@": str(os.getpid()),
        "@HOST_IPS@": ",".join(host_ipv4_addresses()),
    })
    passed = failed = 0
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
            if why:
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
    print("suite runtime: %.1f s" % (time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

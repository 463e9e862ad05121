# case: use /proc to reach the host's init or the server: pid 1's environment, memory, root and descriptors
# defence: pid namespace (pid 1 is the session's own init), init non-dumpable with no descriptors, mount namespace
# expect: blocked
import os

STATE = "@STATE_DIR@"
bad, good = [], []
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
if max(pids) > 50 or len(pids) > 10:
    bad.append("many processes visible: %s" % pids[:30])
with open("/proc/1/status") as f:
    status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
if status["PPid"].strip() != "0":
    bad.append("pid 1 has a parent: %s" % status["PPid"].strip())
with open("/proc/1/cmdline", "rb") as f:
    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
if "systemd" in cmdline or "/sbin/init" in cmdline or "process_api" in cmdline:
    bad.append("pid 1 is the host's init: %s" % cmdline)
good.append("pid 1 is %r (%s), pids %s" % (status["Name"].strip(), cmdline[:40], pids))
try:
    with open("/proc/1/environ", "rb") as f:
        env = f.read().decode(errors="replace")
    leaks = [v for v in env.split("\0") if STATE in v or "/root" in v or "/work" in v
             or "SECRET" in v or "TOKEN" in v or "PYCELL_SEC_CANARY" in v]
    if leaks:
        bad.append("/proc/1/environ leaks %s" % leaks)
    else:
        good.append("/proc/1/environ readable but clean")
except PermissionError:
    good.append("/proc/1/environ EACCES")
for path, what in (("/proc/1/mem", "memory"), ("/proc/1/root/.", "root"), ("/proc/1/cwd/.", "cwd")):
    try:
        if what == "memory":
            with open(path, "rb") as f:
                f.read(1)
        else:
            os.listdir(path)
        bad.append("/proc/1 %s is accessible" % what)
    except PermissionError:
        good.append("%s EACCES" % path)
    except OSError as e:
        good.append("%s %s" % (path, e.strerror))
try:
    fds = os.listdir("/proc/1/fd")
    if fds:
        bad.append("init holds descriptors %s" % fds)
except PermissionError:
    good.append("/proc/1/fd EACCES")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

# case: ptrace: PTRACE_TRACEME, and PTRACE_ATTACH / PTRACE_SEIZE on our own child (read or rewrite another process, step around seccomp)
# defence: seccomp allowlist (ptrace absent -> EPERM)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

import signal
import time

PTRACE_TRACEME, PTRACE_ATTACH, PTRACE_SEIZE, PTRACE_PEEKDATA = 0, 16, 0x4206, 2
# TRACEME in a child, so a success cannot disturb this process.
r_fd, w_fd = os.pipe()
pid = os.fork()
if pid == 0:
    r, e = sc(101, PTRACE_TRACEME, 0, 0, 0)
    os.write(w_fd, b"%d %d" % (r, e))
    os._exit(0)
os.close(w_fd)
r, e = map(int, os.read(r_fd, 64).split())
os.waitpid(pid, 0)
os.close(r_fd)
if r == -1 and e == errno.EPERM:
    good.append("PTRACE_TRACEME EPERM")
else:
    bad.append("PTRACE_TRACEME returned %d (%s)" % (r, errno.errorcode.get(e, e)))
child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
try:
    if refused("PTRACE_ATTACH child", 101, PTRACE_ATTACH, child, 0, 0) == 0:
        sc(101, 17, child, 0, 0)  # PTRACE_DETACH
    if refused("PTRACE_SEIZE child", 101, PTRACE_SEIZE, child, 0, 0) == 0:
        sc(101, 17, child, 0, 0)
    refused("PTRACE_PEEKDATA pid 1", 101, PTRACE_PEEKDATA, 1, 0, 0)
finally:
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
report()

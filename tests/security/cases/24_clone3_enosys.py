# case: clone3 (its flags live in memory, where seccomp cannot look, so it must be refused outright)
# defence: seccomp: clone3 -> ENOSYS (not EPERM: glibc then falls back to clone, which the filter can inspect)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

import subprocess
import threading

refused("clone3(NULL, 0)", 435, 0, 0, want=(errno.ENOSYS,))
args = (ctypes.c_uint64 * 11)()
args[0] = 0x10000000  # CLONE_NEWUSER
args[4] = 17          # exit_signal SIGCHLD
r = refused("clone3(CLONE_NEWUSER)", 435, ctypes.byref(args), ctypes.sizeof(args), want=(errno.ENOSYS,))
if r == 0:
    os._exit(0)
# glibc falls back on ENOSYS: threads, fork and subprocesses work.
t = threading.Thread(target=lambda: None)
t.start()
t.join()
out = subprocess.run(["/usr/bin/echo", "fallback-ok"], capture_output=True, text=True).stdout.strip()
if out == "fallback-ok":
    good.append("threads and subprocesses still work")
else:
    bad.append("subprocess after clone3 refusal printed %r" % out)
report()

# case: clone3 (its flags live in memory, where seccomp cannot look, so it must be refused outright)
# defence: seccomp: clone3 -> ENOSYS (not EPERM: glibc then falls back to clone, which the filter can inspect)
# expect: blocked
import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
bad, good = [], []


def sc(nr, *args):
    """A raw x86_64 system call; integers go as 64-bit values. Returns (result, errno)."""
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r, ctypes.get_errno()


def refused(label, nr, *args, want=(errno.EPERM,)):
    r, e = sc(nr, *args)
    name = errno.errorcode.get(e, str(e))
    if r == -1 and e in want:
        good.append("%s %s" % (label, name))
    else:
        bad.append("%s returned %d (%s), expected %s" % (
            label, r, name, "/".join(errno.errorcode[w] for w in want)))
    return r


def report():
    for b in bad:
        print("ESCAPED:", b)
    if not bad:
        print("BLOCKED:", "; ".join(good))

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

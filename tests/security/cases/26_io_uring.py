# case: io_uring (a large kernel attack surface that also bypasses seccomp for the operations it performs)
# defence: seccomp allowlist (io_uring_* absent -> EPERM; the kernel here has io_uring enabled)
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

params = ctypes.create_string_buffer(120)
r = refused("io_uring_setup(8)", 425, 8, params)
if r >= 0:
    os.close(r)
refused("io_uring_enter(-1) probe", 426, -1, 0, 0, 0, 0, 0)
refused("io_uring_register(-1) probe", 427, -1, 0, 0, 0)
with open("/proc/sys/kernel/io_uring_disabled") as f:
    good.append("(host io_uring_disabled=%s)" % f.read().strip())
report()

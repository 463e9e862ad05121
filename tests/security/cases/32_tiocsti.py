# case: TIOCSTI / TIOCLINUX (push keystrokes into a terminal), also with high bits set on the request number
# defence: seccomp ioctl allowlist, compared on the low 32 bits (the kernel would answer ENOTTY on these descriptors)
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

TIOCSTI, TIOCLINUX, TCGETS = 0x5412, 0x541C, 0x5401
c = ctypes.c_char(b"x")
for fd in (0, 1, 2):
    refused("ioctl(%d, TIOCSTI)" % fd, 16, fd, TIOCSTI, ctypes.byref(c))
refused("ioctl(0, TIOCSTI | 1<<32)", 16, 0, TIOCSTI | (1 << 32), ctypes.byref(c))
refused("ioctl(0, TIOCLINUX)", 16, 0, TIOCLINUX, ctypes.byref(c))
refused("ioctl(0, TIOCSETD)", 16, 0, 0x5423, ctypes.byref(c))
# Control: an allowed request reaches the kernel, which answers for itself (ENOTTY on /dev/null).
buf = ctypes.create_string_buffer(64)
r, e = sc(16, 0, TCGETS, buf)
if r == -1 and e == errno.ENOTTY:
    good.append("control: TCGETS reaches the kernel (ENOTTY)")
else:
    bad.append("control: TCGETS returned %d (%s), expected ENOTTY" % (r, errno.errorcode.get(e, e)))
report()

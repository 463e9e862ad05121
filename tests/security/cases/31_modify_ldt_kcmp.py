# case: modify_ldt (16-bit segments: old exploit surface) and kcmp (compare kernel objects across processes)
# defence: seccomp allowlist (EPERM where the kernel would return 0)
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

buf = ctypes.create_string_buffer(64)
refused("modify_ldt(read)", 154, 0, buf, 64)
desc = (ctypes.c_uint32 * 4)(0, 0, 0xFFFFF, 0x51)
refused("modify_ldt(write)", 154, 1, ctypes.byref(desc), 16)
pid = os.getpid()
refused("kcmp(self, self, KCMP_VM)", 312, pid, pid, 1, 0, 0)
refused("kcmp(self, pid 1, KCMP_FILES)", 312, pid, 1, 2, 0, 0)
report()

# case: perf_event_open (side channels, kernel attack surface): a user-only software counter on ourselves
# defence: seccomp allowlist (EPERM; the probe with invalid flags would be EINVAL from the kernel)
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

attr = (ctypes.c_uint8 * 128)()
ctypes.c_uint32.from_buffer(attr, 0).value = 1    # PERF_TYPE_SOFTWARE
ctypes.c_uint32.from_buffer(attr, 4).value = 128  # size
ctypes.c_uint64.from_buffer(attr, 8).value = 0    # PERF_COUNT_SW_CPU_CLOCK
ctypes.c_uint64.from_buffer(attr, 40).value = (1 << 5) | (1 << 6)  # exclude_kernel, exclude_hv
r = refused("perf_event_open(sw cpu-clock, self)", 298, ctypes.byref(attr), 0, -1, -1, 0)
if r >= 0:
    os.close(r)
refused("perf_event_open(invalid flags) probe", 298, ctypes.byref(attr), 0, -1, -1, 0xFFFF)
report()

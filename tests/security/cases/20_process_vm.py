# case: process_vm_readv / process_vm_writev (read and write another process's memory; tried on ourselves, which the kernel would allow)
# defence: seccomp allowlist (process_vm_* absent -> EPERM)
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



class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


src = ctypes.create_string_buffer(b"secret-bytes", 16)
dst = ctypes.create_string_buffer(16)
local = IoVec(ctypes.addressof(dst), 12)
remote = IoVec(ctypes.addressof(src), 12)
refused("process_vm_readv(self)", 310, os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
refused("process_vm_writev(self)", 311, os.getpid(), ctypes.byref(remote), 1, ctypes.byref(local), 1, 0)
refused("process_vm_readv(pid 1)", 310, 1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
if dst.raw[:12] == b"secret-bytes":
    bad.append("the bytes were copied")
report()

# case: load or remove kernel modules, kexec a new kernel
# defence: seccomp allowlist (EPERM; kexec probes would be ENOSYS from this kernel) and no capability in the initial user namespace
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

b = lambda s: ctypes.c_char_p(s.encode())
image = ctypes.create_string_buffer(b"\x7fELF", 64)
refused("init_module", 175, image, 64, b(""))
fd = os.open("/usr/bin/true", os.O_RDONLY)
refused("finit_module(/usr/bin/true)", 313, fd, b(""), 0)
os.close(fd)
refused("finit_module(-1)", 313, -1, b(""), 0)
refused("delete_module(ext4)", 176, b("ext4"), 0o4000)
refused("kexec_load probe", 246, 0, 0, 0, 0)
refused("kexec_file_load probe", 320, -1, -1, 0, 0, 0)
report()

# case: unshare and setns: new user/mount/net/pid/cgroup/time namespaces, joining another namespace
# defence: seccomp allowlist (unshare and setns absent -> EPERM; unshare(0) and setns(-1) would succeed / say EBADF in the kernel)
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

refused("setns(-1) probe", 308, -1, 0)
fd = os.open("/proc/self/ns/net", os.O_RDONLY)
refused("setns(own net ns)", 308, fd, 0x40000000)
os.close(fd)
fd = os.open("/proc/1/ns/mnt", os.O_RDONLY) if os.access("/proc/1/ns/mnt", os.R_OK) else -1
if fd >= 0:
    refused("setns(init's mnt ns)", 308, fd, 0)
    os.close(fd)
refused("unshare(0) probe", 272, 0)
for flag, name in ((0x00020000, "CLONE_NEWNS"), (0x02000000, "CLONE_NEWCGROUP"),
                   (0x04000000, "CLONE_NEWUTS"), (0x08000000, "CLONE_NEWIPC"),
                   (0x20000000, "CLONE_NEWPID"), (0x40000000, "CLONE_NEWNET"),
                   (0x00000080, "CLONE_NEWTIME"), (0x10000000, "CLONE_NEWUSER"),
                   (0x10000000 | 0x00020000, "CLONE_NEWUSER|CLONE_NEWNS")):
    refused("unshare(%s)" % name, 272, flag)
report()

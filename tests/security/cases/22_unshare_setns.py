# case: unshare and setns: new user/mount/net/pid/cgroup/time namespaces, joining another namespace
# defence: seccomp allowlist (unshare and setns absent -> EPERM; unshare(0) and setns(-1) would succeed / say EBADF in the kernel)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

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

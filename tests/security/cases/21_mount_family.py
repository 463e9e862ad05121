# case: mount and friends: mount a tmpfs, remount / rw, umount, pivot_root, chroot, the new mount API (fsopen, open_tree, move_mount, fsmount, mount_setattr)
# defence: seccomp allowlist (EPERM; probes with bad pointers show the filter answers, not the kernel, which would say EFAULT/EBADF)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

os.makedirs("/tmp/m", exist_ok=True)
b = lambda s: ctypes.c_char_p(s.encode())
refused("mount tmpfs on /tmp/m", 165, b("none"), b("/tmp/m"), b("tmpfs"), 0, 0)
refused("remount / read-write", 165, b("none"), b("/"), 0, 0x20, 0)  # MS_REMOUNT
refused("bind /proc/1/root", 165, b("/proc/1/root"), b("/tmp/m"), 0, 0x1000, 0)  # MS_BIND
refused("mount(bad pointers) probe", 165, 1, 1, 1, 0, 0)
refused("umount2 /tmp", 166, b("/tmp"), 2)  # MNT_DETACH
refused("umount2(bad pointer) probe", 166, 1, 0)
refused("pivot_root", 155, b("/tmp"), b("/tmp/m"))
refused("chroot /tmp", 161, b("/tmp"))
refused("chroot(bad pointer) probe", 161, 1)
refused("fsopen tmpfs", 430, b("tmpfs"), 0)
r = refused("open_tree(/tmp, OPEN_TREE_CLONE)", 428, -100, b("/tmp"), 1)
if r >= 0:
    os.close(r)
r = refused("open_tree(/) probe (no clone: the kernel would allow it)", 428, -100, b("/"), 0)
if r >= 0:
    os.close(r)
refused("move_mount", 429, -100, b("/tmp"), -100, b("/tmp/m"), 0)
refused("fsmount(-1) probe", 432, -1, 0, 0)
refused("fspick /", 433, -100, b("/"), 0)
refused("mount_setattr", 442, -100, b("/"), 0, 0, 0)
report()

# case: TIOCSTI / TIOCLINUX (push keystrokes into a terminal), also with high bits set on the request number
# defence: seccomp ioctl allowlist, compared on the low 32 bits (the kernel would answer ENOTTY on these descriptors)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

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

# case: io_uring (a large kernel attack surface that also bypasses seccomp for the operations it performs)
# defence: seccomp allowlist (io_uring_* absent -> EPERM; the kernel here has io_uring enabled)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

params = ctypes.create_string_buffer(120)
r = refused("io_uring_setup(8)", 425, 8, params)
if r >= 0:
    os.close(r)
refused("io_uring_enter(-1) probe", 426, -1, 0, 0, 0, 0, 0)
refused("io_uring_register(-1) probe", 427, -1, 0, 0, 0)
with open("/proc/sys/kernel/io_uring_disabled") as f:
    good.append("(host io_uring_disabled=%s)" % f.read().strip())
report()

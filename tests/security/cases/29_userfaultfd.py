# case: userfaultfd (stalls kernel page faults: the classic race-widening exploit primitive)
# defence: seccomp allowlist (EPERM; UFFD_USER_MODE_ONLY would be allowed by the kernel)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

r = refused("userfaultfd(UFFD_USER_MODE_ONLY)", 323, 0o2000000 | 1)
if r >= 0:
    os.close(r)
r = refused("userfaultfd(0)", 323, 0)
if r >= 0:
    os.close(r)
if os.path.exists("/dev/userfaultfd"):
    bad.append("/dev/userfaultfd exists")
report()

# case: modify_ldt (16-bit segments: old exploit surface) and kcmp (compare kernel objects across processes)
# defence: seccomp allowlist (EPERM where the kernel would return 0)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

buf = ctypes.create_string_buffer(64)
refused("modify_ldt(read)", 154, 0, buf, 64)
desc = (ctypes.c_uint32 * 4)(0, 0, 0xFFFFF, 0x51)
refused("modify_ldt(write)", 154, 1, ctypes.byref(desc), 16)
pid = os.getpid()
refused("kcmp(self, self, KCMP_VM)", 312, pid, pid, 1, 0, 0)
refused("kcmp(self, pid 1, KCMP_FILES)", 312, pid, 1, 2, 0, 0)
report()

# case: perf_event_open (side channels, kernel attack surface): a user-only software counter on ourselves
# defence: seccomp allowlist (EPERM; the probe with invalid flags would be EINVAL from the kernel)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

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

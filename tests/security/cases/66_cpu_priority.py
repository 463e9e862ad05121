# case: starve the host's CPU: real-time scheduling (SCHED_FIFO, SCHED_RR, SCHED_DEADLINE) or a negative nice value
# defence: no CAP_SYS_NICE in the initial namespace; RLIMIT_RTPRIO and RLIMIT_NICE of 0
# expect: blocked
import ctypes
import errno
import os
import resource

libc = ctypes.CDLL(None, use_errno=True)
bad, good = [], []


class Param(ctypes.Structure):
    _fields_ = [("priority", ctypes.c_int)]


for policy, name in ((1, "SCHED_FIFO"), (2, "SCHED_RR")):
    ctypes.set_errno(0)
    if libc.sched_setscheduler(0, policy, ctypes.byref(Param(1))) == 0:
        bad.append("switched to %s" % name)
    else:
        good.append("%s %s" % (name, errno.errorcode.get(ctypes.get_errno())))
attr = (ctypes.c_uint32 * 14)()
attr[0] = 56       # size
attr[1] = 6        # SCHED_DEADLINE
ctypes.c_uint64.from_buffer(attr, 32).value = 10_000_000   # runtime
ctypes.c_uint64.from_buffer(attr, 40).value = 10_000_000   # deadline
ctypes.c_uint64.from_buffer(attr, 48).value = 10_000_000   # period
libc.syscall.restype = ctypes.c_long
ctypes.set_errno(0)
if libc.syscall(ctypes.c_long(314), ctypes.c_long(0), ctypes.byref(attr), ctypes.c_long(0)) == 0:
    bad.append("switched to SCHED_DEADLINE")
else:
    good.append("SCHED_DEADLINE %s" % errno.errorcode.get(ctypes.get_errno()))
try:
    os.setpriority(os.PRIO_PROCESS, 0, -10)
    bad.append("nice lowered to %d" % os.getpriority(os.PRIO_PROCESS, 0))
except OSError as e:
    good.append("nice -10 %s" % errno.errorcode.get(e.errno))
for name in ("RLIMIT_RTPRIO", "RLIMIT_NICE"):
    limit = resource.getrlimit(getattr(resource, name))
    if limit != (0, 0):
        bad.append("%s is %s" % (name, limit))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

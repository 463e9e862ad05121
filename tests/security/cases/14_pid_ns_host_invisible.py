# case: see and signal host processes (the test runner's pid, pidfd_open on it)
# defence: pid namespace
# expect: blocked
import ctypes
import errno
import os
import signal

HOST_PID = int("@RUNNER_PID@")
bad, good = [], []
if os.path.exists("/proc/%d" % HOST_PID):
    bad.append("/proc/%d (the runner on the host) is visible" % HOST_PID)
else:
    good.append("/proc/%d absent" % HOST_PID)
try:
    os.kill(HOST_PID, 0)
    bad.append("kill(%d, 0) succeeded: the host's runner is signalable" % HOST_PID)
except ProcessLookupError:
    good.append("kill ESRCH")
except PermissionError:
    bad.append("kill(%d) EPERM: the pid exists in our namespace" % HOST_PID)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
ctypes.set_errno(0)
fd = libc.syscall(ctypes.c_long(434), ctypes.c_long(HOST_PID), ctypes.c_long(0))  # pidfd_open
e = ctypes.get_errno()
if fd >= 0:
    os.close(fd)
    bad.append("pidfd_open(%d) opened the host's runner" % HOST_PID)
elif e == errno.ESRCH:
    good.append("pidfd_open ESRCH")
else:
    bad.append("pidfd_open: unexpected %s" % errno.errorcode.get(e, e))
# Our own pid is small: we are inside a fresh namespace.
if os.getpid() > 50:
    bad.append("our pid is %d: not a fresh pid namespace" % os.getpid())
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good), "; own pid", os.getpid())

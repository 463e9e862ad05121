# case: leave something behind for the next session: files in /tmp, /mnt/data and /dev/shm, a System V segment, a POSIX message queue; the second run looks for the first run's
# defence: per-session tmpfs for /tmp, /mnt/data and /dev/shm; IPC namespace; everything torn down at session end
# expect: blocked
# runs: 2
import ctypes
import errno
import os

MARK = "pycell-sec-marker"
KEY = 0x50594301
libc = ctypes.CDLL(None, use_errno=True)
bad, good = [], []
for folder in ("/tmp", "/mnt/data", "/dev/shm"):
    path = os.path.join(folder, MARK)
    if os.path.exists(path):
        bad.append("%s left by an earlier session: %r" % (path, open(path).read()))
    with open(path, "w") as f:
        f.write("from pid %d" % os.getpid())
    good.append("%s fresh" % folder)
ctypes.set_errno(0)
shm = libc.shmget(KEY, 4096, 0o1000 | 0o2000 | 0o600)  # IPC_CREAT | IPC_EXCL
if shm < 0 and ctypes.get_errno() == errno.EEXIST:
    bad.append("System V segment 0x%x left by an earlier session" % KEY)
elif shm < 0:
    bad.append("shmget failed: %s" % errno.errorcode.get(ctypes.get_errno()))
else:
    good.append("SysV key fresh")
libc.mq_open.restype = ctypes.c_int
ctypes.set_errno(0)
mq = libc.mq_open(b"/" + MARK.encode(), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600, None)
if mq < 0 and ctypes.get_errno() == errno.EEXIST:
    bad.append("POSIX message queue left by an earlier session")
elif mq < 0:
    good.append("mq_open %s" % errno.errorcode.get(ctypes.get_errno()))
else:
    good.append("message queue fresh")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: nothing from an earlier session;", "; ".join(good))

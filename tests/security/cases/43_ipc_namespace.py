# case: reach the host's System V IPC objects (the runner created a shared memory segment on the host)
# defence: IPC namespace
# expect: blocked
import ctypes
import errno

KEY = int("@HOST_SYSV_KEY@")
libc = ctypes.CDLL(None, use_errno=True)
bad, good = [], []
ctypes.set_errno(0)
shm = libc.shmget(KEY, 0, 0)
e = ctypes.get_errno()
if shm >= 0:
    bad.append("the host's shared memory segment (key 0x%x) is visible: id %d" % (KEY, shm))
elif e == errno.ENOENT:
    good.append("shmget(host key) ENOENT")
else:
    bad.append("shmget: unexpected %s" % errno.errorcode.get(e, e))
with open("/proc/sysvipc/shm") as f:
    rows = f.read().splitlines()[1:]
if any(row.split()[0] == str(KEY) for row in rows):
    bad.append("/proc/sysvipc/shm lists the host's segment")
else:
    good.append("/proc/sysvipc/shm has %d rows" % len(rows))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

# case: two sessions running at once look for each other: files in /tmp, /mnt/data, /dev/shm, an abstract unix socket, a System V segment, each other's processes
# defence: mount, IPC, network and pid namespaces per session
# expect: blocked
# runs: 2 parallel
import ctypes
import errno
import os
import socket
import time

token = os.urandom(8).hex()
libc = ctypes.CDLL(None, use_errno=True)
bad, good = [], []
for folder in ("/tmp", "/mnt/data", "/dev/shm"):
    with open(os.path.join(folder, "pycell-sec-peer-" + token), "w") as f:
        f.write(token)
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    listener.bind("\0pycell-sec-peer")
    listener.listen(1)
    good.append("abstract name free")
except OSError as e:
    if e.errno == errno.EADDRINUSE:
        bad.append("the other session's abstract socket is visible")
KEY = 0x50594302
ctypes.set_errno(0)
shm = libc.shmget(KEY, 4096, 0o1000 | 0o2000 | 0o600)
if shm < 0 and ctypes.get_errno() == errno.EEXIST:
    bad.append("the other session's System V segment is visible")
started = time.time()
while time.time() - started < 4:
    for folder in ("/tmp", "/mnt/data", "/dev/shm"):
        for name in os.listdir(folder):
            if name.startswith("pycell-sec-peer-") and not name.endswith(token):
                bad.append("found the other session's %s/%s" % (folder, name))
    if len([p for p in os.listdir("/proc") if p.isdigit()]) > 3:
        bad.append("more processes than our own: %s" % sorted(os.listdir("/proc"))[:20])
    if bad:
        break
    time.sleep(0.2)
bad = sorted(set(bad))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: no trace of the other session during 4 s;", "; ".join(good))

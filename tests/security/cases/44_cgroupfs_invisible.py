# case: reach the cgroup filesystem to raise our own limits or move into another cgroup (/sys/fs/cgroup, mounting cgroupfs)
# defence: /sys not mounted; mount refused by seccomp; no capabilities
# expect: blocked
import ctypes
import errno
import os

bad, good = [], []
for path in ("/sys", "/sys/fs/cgroup", "/sys/fs/cgroup/memory/pycell"):
    if os.path.exists(path):
        bad.append("%s is visible" % path)
good.append("/sys absent")
with open("/proc/self/cgroup") as f:
    lines = f.read().splitlines()
for line in lines:
    _, controllers, path = line.split(":", 2)
    if controllers in ("memory", "pids") and path != "/":
        target = "/sys/fs/cgroup/%s%s/%s" % (controllers, path, "memory.limit_in_bytes" if controllers == "memory" else "pids.max")
        try:
            with open(target, "w") as f:
                f.write("max")
            bad.append("raised %s" % target)
        except OSError as e:
            good.append("%s: %s" % (target, e.strerror))
os.makedirs("/tmp/cg", exist_ok=True)
libc = ctypes.CDLL(None, use_errno=True)
for fstype, opts in ((b"cgroup", b"memory"), (b"cgroup2", None)):
    ctypes.set_errno(0)
    if libc.mount(b"cgroup", b"/tmp/cg", fstype, 0, opts) == 0:
        bad.append("mounted %s" % fstype.decode())
    else:
        good.append("mount %s %s" % (fstype.decode(), errno.errorcode.get(ctypes.get_errno())))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

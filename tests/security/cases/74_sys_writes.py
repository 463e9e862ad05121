# case: write kernel knobs through /sys (uevent_helper, power/state, a NIC's settings, cgroupfs) and reach /proc/sys by other routes: a dir fd, /proc/self/root, /proc/1/root, /proc/PID/task; mount a fresh sysfs or procfs to write through
# defence: no /sys in the new root (and the root is read-only, so it cannot be made); /proc/sys bind-mounted read-only (EROFS by every path); mount and fsopen refused by seccomp (EPERM, where the probe's bad pointer would be EFAULT from the kernel)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

for path in ("/sys", "/proc/self/root/sys", "/proc/1/root/sys"):
    try:
        os.stat(path)
        bad.append("%s exists" % path)
    except OSError as e:
        good.append("%s %s" % (path, errno.errorcode.get(e.errno, e.errno)))
for path in ("/sys/kernel/uevent_helper", "/sys/power/state", "/sys/class/net/lo/mtu",
             "/sys/fs/cgroup/pids/pids.max", "/sys/kernel/mm/transparent_hugepage/enabled"):
    try:
        with open(path, "w") as f:
            f.write("1")
        bad.append("wrote %s" % path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            bad.append("%s: %s, expected ENOENT (no /sys)" % (path, e.strerror))
good.append("/sys/... writes ENOENT")
try:
    os.mkdir("/sys")
    bad.append("created /sys")
except OSError as e:
    good.append("mkdir /sys %s" % errno.errorcode.get(e.errno, e.errno))

# /proc/sys by other routes: every one must land on the read-only bind (EROFS).
pid = os.getpid()
routes = ["/proc/self/root/proc/sys/kernel/core_pattern",
          "/proc/%d/task/%d/root/proc/sys/kernel/core_pattern" % (pid, pid),
          "/proc/thread-self/root/proc/sys/kernel/hostname"]
for path in routes:
    try:
        with open(path, "w") as f:
            f.write("|/tmp/x")
        bad.append("wrote %s" % path)
    except OSError as e:
        if e.errno == errno.EROFS:
            good.append("%s EROFS" % path)
        else:
            bad.append("%s: %s, expected EROFS" % (path, e.strerror))
dfd = os.open("/proc/sys/kernel", os.O_RDONLY | os.O_DIRECTORY)
try:
    os.close(os.open("core_pattern", os.O_WRONLY | os.O_TRUNC, dir_fd=dfd))
    bad.append("opened core_pattern for writing through a dir fd")
except OSError as e:
    if e.errno == errno.EROFS:
        good.append("openat(/proc/sys/kernel fd, core_pattern) EROFS")
    else:
        bad.append("openat(/proc/sys/kernel fd, core_pattern): %s, expected EROFS" % e.strerror)
os.close(dfd)
try:
    os.listdir("/proc/1/root/proc/sys")
    bad.append("/proc/1/root is traversable")
except OSError as e:
    good.append("/proc/1/root %s" % errno.errorcode.get(e.errno, e.errno))

# A fresh sysfs or procfs (one without the read-only bind on /proc/sys) to write through.
os.makedirs("/tmp/fresh", exist_ok=True)
b = lambda s: ctypes.c_char_p(s.encode())
refused("mount sysfs", 165, b("sysfs"), b("/tmp/fresh"), b("sysfs"), 0, 0)
refused("mount proc", 165, b("proc"), b("/tmp/fresh"), b("proc"), 0, 0)
refused("mount with bad pointers (probe)", 165, 1, 1, 1, 0, 0)
refused("fsopen(sysfs)", 430, b("sysfs"), 0)
refused("fsopen(proc)", 430, b("proc"), 0)

# Control: the knobs exist and are readable, so EROFS is the mount, not a missing file.
with open("/proc/sys/kernel/core_pattern") as f:
    f.read()
good.append("control: /proc/sys/kernel/core_pattern readable")
report()

# case: use a descriptor inherited from the server (a host directory to openat() out of, a host file, the store)
# defence: every inherited descriptor closed (close_range) before the session starts; init keeps none
# expect: blocked
import os
import stat
import subprocess

bad, good = [], []
CHAR_OK = {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9)}  # null zero full random urandom
entries = os.listdir("/proc/self/fd")
for fd_name in entries:
    fd = int(fd_name)
    try:
        target = os.readlink("/proc/self/fd/%d" % fd)
        st = os.fstat(fd)
    except OSError:
        continue  # the descriptor listdir used, closed since
    kind = "?"
    if stat.S_ISDIR(st.st_mode):
        bad.append("fd %d is a directory: %s" % (fd, target))
        continue
    if stat.S_ISCHR(st.st_mode):
        dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
        if dev not in CHAR_OK:
            bad.append("fd %d is device %s: %s" % (fd, dev, target))
            continue
        kind = "chr%s" % (dev,)
    elif stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode) or target.startswith("anon_inode:"):
        kind = target.split(":")[0]
    else:
        bad.append("fd %d is %s (mode %o)" % (fd, target, st.st_mode))
        continue
    for host_path in ("/work", "/var/lib", "/root", "/home", "@STATE_DIR@", "/sessions/"):
        if host_path in target:
            bad.append("fd %d points at a host path: %s" % (fd, target))
    good.append("%d:%s" % (fd, kind))
if len(good) > 8:
    bad.append("unexpectedly many descriptors open: %s" % good)
# A child process sees only 0, 1, 2 (and its own listing descriptor).
child = subprocess.run(["/usr/bin/ls", "/proc/self/fd"], capture_output=True, text=True).stdout.split()
if len(child) > 4:
    bad.append("a child process holds descriptors %s" % child)
try:
    init_fds = os.listdir("/proc/1/fd")
    if init_fds:
        bad.append("init holds descriptors %s" % init_fds)
except PermissionError:
    good.append("init's fds EACCES")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: descriptors", " ".join(good), "; child sees", child)

# case: two sessions running at once signal each other through file locks (flock and open-file-description locks) on files both can open: the shared runtime in /usr, /etc/ld.so.cache, /dev/null, /dev/urandom, and standard input (opened by the zygote before the session existed); each holds every lock it can get for 5 s and watches for locks it did not take
# defence: every file a session can lock is its own: locks live on inodes, so a session may see no inode another session can lock (per-session /dev/shm, /tmp and /mnt/data; /usr and the /etc entries through a read-only overlay of the session's own, whose inodes belong to it; device nodes the server made for this session; stdin reopened on those)
# expect: blocked
# expect: runs-overlap
# runs: 2 parallel
import errno
import fcntl
import os
import struct
import sys
import time

bad, good = [], []
FILES = [os.path.realpath(sys.executable), "/usr/lib/os-release", "/etc/ld.so.cache",
         "/dev/null", "/dev/urandom", "/proc/self/fd/0"]


def ofd_lock(fd, cmd, kind):
    """An open-file-description lock on byte 0 (F_OFD_SETLK / F_OFD_GETLK); returns the l_type."""
    packed = struct.pack("hhxxxxqqixxxx", kind, os.SEEK_SET, 0, 1, 0)
    return struct.unpack("hhxxxxqqixxxx", fcntl.fcntl(fd, cmd, packed))[0]


fds, inodes = {}, {}
for path in FILES:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        good.append("%s: %s" % (path, e.strerror))
        continue
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) in inodes:  # Our own locks on it would look like another's.
        good.append("%s is %s" % (path, inodes[(st.st_dev, st.st_ino)]))
        os.close(fd)
        continue
    inodes[(st.st_dev, st.st_ino)] = path
    fds[path] = fd
held_flock, held_ofd = set(), set()
started = time.time()
while time.time() - started < 5:
    for path, fd in fds.items():
        if path not in held_flock:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held_flock.add(path)
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    bad.append("flock(%s) is held by someone outside this session" % path)
                else:
                    bad.append("flock(%s): %s" % (path, e.strerror))
        if path not in held_ofd:
            # A read lock needs only read access; asking about a write lock shows any reader.
            other = ofd_lock(fd, fcntl.F_OFD_GETLK, fcntl.F_WRLCK)
            if other != fcntl.F_UNLCK:
                bad.append("an OFD lock on %s is held by someone outside this session" % path)
            ofd_lock(fd, fcntl.F_OFD_SETLK, fcntl.F_RDLCK)
            held_ofd.add(path)
    if bad:
        break
    time.sleep(0.1)

# Control: a second descriptor of our own sees both kinds of lock, so the watch above works.
for path, fd in fds.items():
    probe = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        bad.append("control failed: a second descriptor got flock(%s) while we hold it" % path)
    except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            bad.append("control: flock(%s): %s" % (path, e.strerror))
    if ofd_lock(probe, fcntl.F_OFD_GETLK, fcntl.F_WRLCK) == fcntl.F_UNLCK:
        bad.append("control failed: a second descriptor does not see our OFD lock on %s" % path)
    os.close(probe)
good.append("control: a second descriptor sees our locks on %d files" % len(fds))
bad = sorted(set(bad))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: for 5 s no lock of another session showed on %s;" % ", ".join(fds),
          "; ".join(good))

# case: a 10 GB sparse file (costs no memory in tmpfs, so a quota on bytes stored would not see it, but every reader and copier sees 10 GB): ftruncate, a write at offset 10 GB, fallocate, in /mnt/data and in /tmp
# defence: RLIMIT_FSIZE (512 MiB) makes every way to a size past it fail with EFBIG, and SIGXFSZ does not kill the session; fallocate of real blocks hits the tmpfs quota (ENOSPC) first
# expect: blocked
import errno
import os

bad, good = [], []
TEN_GB = 10 * 1000 ** 3
for folder in ("/mnt/data", "/tmp"):
    path = os.path.join(folder, "sparse.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    for label, action in (("ftruncate", lambda: os.ftruncate(fd, TEN_GB)),
                          ("pwrite at 10 GB", lambda: os.pwrite(fd, b"x", TEN_GB - 1)),
                          ("fallocate at 10 GB", lambda: os.posix_fallocate(fd, TEN_GB - 4096, 4096)),
                          ("fallocate 10 GB", lambda: os.posix_fallocate(fd, 0, TEN_GB)),
                          ("truncate by path", lambda: os.truncate(path, TEN_GB))):
        try:
            action()
            size = os.fstat(fd).st_size
            if size > 600 * 1024 ** 2:
                bad.append("%s %s: the file is now %d bytes" % (folder, label, size))
            else:
                bad.append("%s %s succeeded (size %d)" % (folder, label, size))
        except OSError as e:
            if e.errno in (errno.EFBIG, errno.ENOSPC):
                good.append("%s %s %s" % (folder, label, errno.errorcode[e.errno]))
            else:
                bad.append("%s %s: %s, expected EFBIG" % (folder, label, e.strerror))
    # Control: a sparse file under the limit is fine (so EFBIG is the limit, not sparseness).
    os.ftruncate(fd, 100 * 1024 ** 2)
    st = os.fstat(fd)
    if st.st_size == 100 * 1024 ** 2 and st.st_blocks * 512 < 1024 ** 2:
        good.append("control: a 100 MiB sparse file in %s uses %d bytes" % (folder, st.st_blocks * 512))
    else:
        bad.append("control failed: 100 MiB sparse file in %s: size %d blocks %d" % (
            folder, st.st_size, st.st_blocks))
    os.close(fd)
    os.unlink(path)
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: the session lives on;", "; ".join(good))

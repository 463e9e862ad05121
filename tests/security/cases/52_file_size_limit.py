# case: write one file bigger than the per-file limit (600 MiB into /mnt/data)
# defence: RLIMIT_FSIZE (512 MiB): the write fails with EFBIG and the session carries on (as in any Python, SIGXFSZ must not kill it)
# expect: blocked
import errno
import os

chunk = b"\x05" * (8 << 20)
written, failure = 0, None
fd = os.open("/mnt/data/big", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
try:
    while written < 600 * 2**20:
        written += os.write(fd, chunk)
except OSError as e:
    failure = e
os.close(fd)
os.unlink("/mnt/data/big")
if failure is None:
    print("ESCAPED: wrote a %d MiB file" % (written >> 20))
elif failure.errno != errno.EFBIG:
    print("ESCAPED: wrote %d bytes, then %r (expected EFBIG)" % (written, failure))
else:
    print("BLOCKED: EFBIG at %d MiB" % (written >> 20))

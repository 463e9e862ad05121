# case: fill /dev/shm (POSIX shared memory) with 300 MB
# defence: /dev/shm tmpfs size quota (a quarter of the /tmp quota): ENOSPC
# expect: blocked
import errno
import os

chunk = b"\x03" * (4 << 20)
written, failure = 0, None
fd = os.open("/dev/shm/fill", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
try:
    while written < 300 * 1000 * 1000:
        written += os.write(fd, chunk)
except OSError as e:
    failure = e
os.close(fd)
os.unlink("/dev/shm/fill")
if failure is None:
    print("ESCAPED: wrote %d bytes to /dev/shm" % written)
elif failure.errno != errno.ENOSPC or written > (256 << 20):
    print("ESCAPED: wrote %d bytes, then %r" % (written, failure))
else:
    print("BLOCKED: ENOSPC after %.1f MiB in /dev/shm" % (written / 2**20))

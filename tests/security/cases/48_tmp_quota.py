# case: fill /tmp (the session's private tmpfs) with 300 MB
# defence: /tmp tmpfs size quota (256 MiB by default): ENOSPC
# expect: blocked
import errno
import os

chunk = b"\x02" * (4 << 20)
written, failure = 0, None
fd = os.open("/tmp/fill", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
try:
    while written < 300 * 1000 * 1000:
        written += os.write(fd, chunk)
except OSError as e:
    failure = e
os.close(fd)
os.unlink("/tmp/fill")
if failure is None:
    print("ESCAPED: wrote %d bytes to /tmp" % written)
elif failure.errno != errno.ENOSPC or written > (256 << 20):
    print("ESCAPED: wrote %d bytes, then %r (expected ENOSPC by 256 MiB)" % (written, failure))
else:
    print("BLOCKED: ENOSPC after %.1f MiB in /tmp" % (written / 2**20))

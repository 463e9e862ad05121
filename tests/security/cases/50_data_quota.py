# case: fill /mnt/data beyond its quota (files of 128 MiB each, stop at 1.1 GiB)
# defence: /mnt/data tmpfs size quota (1 GiB by default): ENOSPC
# expect: blocked
import errno
import os

chunk = b"\x04" * (8 << 20)
written, failure, files = 0, None, []
try:
    while written < 1100 * 2**20 and failure is None:
        path = "/mnt/data/fill%02d" % len(files)
        files.append(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(16):
                written += os.write(fd, chunk)
        except OSError as e:
            failure = e
        finally:
            os.close(fd)
finally:
    for path in files:
        os.unlink(path)
if failure is None:
    print("ESCAPED: wrote %.1f MiB to /mnt/data" % (written / 2**20))
elif failure.errno != errno.ENOSPC or written > (1 << 30):
    print("ESCAPED: wrote %d bytes, then %r (expected ENOSPC by 1 GiB)" % (written, failure))
else:
    print("BLOCKED: ENOSPC after %.1f MiB in /mnt/data" % (written / 2**20))

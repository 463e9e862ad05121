# case: "a billion small files" in /mnt/data, the folder the server scans and exports after every cell: empty files in 100 folders until the file system refuses (at most 400 000)
# defence: nr_inodes on the /mnt/data tmpfs (ENOSPC after about 263 000); the server's scan of the folder after the cell stops at 100 000 entries, so the run still ends promptly (no --out here: exporting is 80_sparse_artifacts' subject, and copying 100 000 files would take a minute)
# expect: blocked
# expect: finishes-within=30
import errno
import os

count, failure = 0, None
try:
    for d in range(100):
        os.mkdir("/mnt/data/d%02d" % d)
    while count < 400000:
        os.close(os.open("/mnt/data/d%02d/%d" % (count % 100, count), os.O_WRONLY | os.O_CREAT, 0o600))
        count += 1
except OSError as e:
    failure = e
if failure is None:
    print("ESCAPED: created %d files in /mnt/data" % count)
elif failure.errno != errno.ENOSPC:
    print("ESCAPED: created %d files, then %r (expected ENOSPC)" % (count, failure))
else:
    print("BLOCKED: ENOSPC after %d files in /mnt/data" % count)

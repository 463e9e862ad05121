# case: exhaust inodes with empty files in /tmp (a quota on bytes alone would not stop this), up to 100000
# defence: nr_inodes limit on the /tmp tmpfs: ENOSPC
# expect: blocked
import errno
import os

os.mkdir("/tmp/many")
count, failure = 0, None
try:
    while count < 100000:
        os.close(os.open("/tmp/many/%d" % count, os.O_WRONLY | os.O_CREAT, 0o600))
        count += 1
except OSError as e:
    failure = e
if failure is None:
    print("ESCAPED: created %d files in /tmp" % count)
elif failure.errno != errno.ENOSPC:
    print("ESCAPED: created %d files, then %r (expected ENOSPC)" % (count, failure))
else:
    print("BLOCKED: ENOSPC after %d files" % count)

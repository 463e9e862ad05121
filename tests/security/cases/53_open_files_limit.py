# case: exhaust descriptors (open /dev/null until it fails, at most 5000), then raise the hard limit
# defence: RLIMIT_NOFILE (1024), hard limit cannot be raised without CAP_SYS_RESOURCE
# expect: blocked
import os
import resource

fds, failure = [], None
try:
    while len(fds) < 5000:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    failure = e
for fd in fds:
    os.close(fd)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard * 4, hard * 4))
    raised = resource.getrlimit(resource.RLIMIT_NOFILE)
except (ValueError, OSError) as e:
    raised = None
if failure is None or len(fds) > 1024:
    print("ESCAPED: opened %d descriptors" % len(fds))
elif raised is not None:
    print("ESCAPED: raised RLIMIT_NOFILE to %s" % (raised,))
else:
    print("BLOCKED: %r after %d descriptors; hard limit %d stays" % (failure, len(fds), hard))

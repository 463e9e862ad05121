# case: exhaust the host's process table: fork sleeping children until fork fails (at most 600 tries)
# defence: pids cgroup (256 per session) and RLIMIT_NPROC on the session's own host uid
# expect: blocked
import os

r_fd, w_fd = os.pipe()
children, failure = [], None
while len(children) < 600:
    try:
        pid = os.fork()
    except OSError as e:
        failure = e
        break
    if pid == 0:
        os.close(w_fd)
        try:
            os.read(r_fd, 1)  # until the parent closes its end
        finally:
            os._exit(0)
    children.append(pid)
os.close(w_fd)
os.close(r_fd)
for pid in children:
    os.waitpid(pid, 0)
if failure is None:
    print("ESCAPED: forked %d processes without hitting a limit" % len(children))
elif len(children) > 256:
    print("ESCAPED: forked %d processes before %r (limit is 256)" % (len(children), failure))
else:
    print("BLOCKED: fork failed after %d children with %r" % (len(children), failure))

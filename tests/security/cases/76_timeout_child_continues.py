# case: hit the cell timeout and carry on in a child process: the cell starts a detached worker (new session, SIGINT/SIGTERM/SIGHUP ignored, its own process group) that keeps computing and writing, then ignores the interrupt itself so the session is killed; the worker would go on after the kill
# defence: after the interrupt's grace period the server SIGKILLs the session's init through its pidfd, and the kernel kills every process of the pid namespace with it (the runner checks no process of the session is left, and the worker's output stops)
# expect: status=timeout
# expect: end-reason=killed_after_timeout
# expect: stdout-contains=worker started
# args: --timeout 2
import os
import signal
import time

started = time.monotonic()
r_fd, w_fd = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        os.write(w_fd, b"x")
        os.close(w_fd)
        # The session is killed about 2 s (timeout) + 3 s (grace) after the start; anything this
        # worker prints well after that means it outlived the kill.
        n = 0
        while True:
            n += 1
            if time.monotonic() - started > 9:
                os.write(1, b"ESCAPED: the worker still runs %.0f s after the start\n"
                         % (time.monotonic() - started))
                time.sleep(0.2)
            sum(range(10000))
    os._exit(0)
os.read(r_fd, 1)
print("worker started", flush=True)
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass

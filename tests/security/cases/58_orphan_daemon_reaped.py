# case: leave a daemon running after the session ends (double fork, new session, ignore SIGHUP/SIGTERM/SIGINT)
# defence: pid namespace: when the session's init exits the kernel kills everything in it (the runner checks no process of the session's uid is left on the host)
# expect: status=ok
# expect: stdout-contains=daemon started
import os
import signal
import time

r_fd, w_fd = os.pipe()
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        os.write(w_fd, b"%d" % os.getpid())
        os.close(w_fd)
        for fd in (0, 1, 2):
            os.close(fd)
        time.sleep(3600)
    os._exit(0)
os.waitpid(pid, 0)
os.close(w_fd)
print("daemon started as pid", os.read(r_fd, 32).decode())

# case: endless output without a single newline, on stdout and stderr at once, from five processes sharing the pipes (each enlarged to 1 MiB with F_SETPIPE_SZ), so the server's reader never sees an empty pipe; the cell itself never returns
# defence: the server caps each stream at 1 MiB (nothing waits for a line end) and its reading never starves its own deadline: the timeout interrupts, then kills the session
# expect: status=timeout
# expect: end-reason=killed_after_timeout
# expect: stdout-at-most=1049600
# expect: stdout-contains=[pycell: output truncated at 1048576 bytes]
# expect: finishes-within=30
# args: --timeout 3
import fcntl
import os
import signal

F_SETPIPE_SZ = 1031
for fd in (1, 2):
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
    except OSError:
        pass
signal.signal(signal.SIGINT, signal.SIG_IGN)
chunk = b"y" * (1 << 20)
for _ in range(4):
    if os.fork() == 0:
        break
while True:
    os.write(1, chunk)
    os.write(2, chunk)

# case: the cell kills its own runner (the session's Python kernel) with SIGKILL after trying to take the rest of the session down too: kill(-1) over every process it may signal, kill of its init, and a daemon left behind
# defence: the server sees the control socket hang up and ends the session as crashed; init refuses the cell's signals (uid, EPERM); ending the session kills every process of its pid namespace (the runner checks nothing is left)
# expect: status=crashed
# expect: end-reason=crashed
# expect: stdout-contains=init refused SIGKILL
import os
import signal
import time

try:
    os.kill(1, signal.SIGKILL)
    print("ESCAPED: kill(1, SIGKILL) was allowed")
except PermissionError:
    print("init refused SIGKILL (EPERM)")
try:
    os.kill(-1, signal.SIGKILL)  # Every process we may signal, except ourselves and init.
except ProcessLookupError:
    pass  # There was none.
# A daemon to outlive us.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(3600)
    os._exit(0)
os.wait()
print("kill(-1) done; now the runner itself", flush=True)
os.kill(os.getpid(), signal.SIGKILL)

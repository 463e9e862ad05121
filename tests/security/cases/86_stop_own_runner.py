# case: the cell freezes its own runner (SIGSTOP to itself), so it can answer neither the cell's end nor the interrupt
# defence: the timeout does not depend on the runner: after the interrupt's grace period the server kills the session through its init's pidfd
# expect: status=timeout
# expect: end-reason=killed_after_timeout
# expect: finishes-within=30
# args: --timeout 2
import os
import signal

print("stopping myself", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
print("resumed (the case expects the session to be killed while stopped)")

# case: a real fork bomb (every process forks forever), left to run into the cell timeout
# defence: pids cgroup + RLIMIT_NPROC contain it; the timeout interrupts and then kills the session; nothing survives on the host (checked by the runner)
# expect: status=timeout|error|crashed
# args: --timeout 5
import os

while True:
    try:
        os.fork()
    except OSError:
        pass

# case: dodge the cell timeout: ignore SIGINT, block it, and spin forever
# defence: the timeout interrupts, then kills the session after a grace period
# expect: status=timeout
# expect: end-reason=killed_after_timeout
# args: --timeout 2
import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
while True:
    pass

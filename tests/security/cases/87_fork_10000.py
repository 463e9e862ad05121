# case: a cell that forks 10 000 times without reaping (every child exits at once and stays a zombie, which still holds its pid), then tries 10 000 threads
# defence: pids cgroup (256 per session) and RLIMIT_NPROC: fork fails with EAGAIN and thread creation with RuntimeError long before 10 000; once the zombies are reaped the session forks again
# expect: blocked
import os
import threading
import time

bad, good = [], []
children, failure = [], None
for _ in range(10000):
    try:
        pid = os.fork()
    except OSError as e:
        failure = e
        break
    if pid == 0:
        os._exit(0)
    children.append(pid)
if failure is None:
    bad.append("forked 10000 times without reaping")
else:
    good.append("fork failed after %d unreaped children (%s)" % (len(children), failure.strerror))
    if len(children) > 300:
        bad.append("%d processes at once, more than the pids limit" % len(children))
for pid in children:
    os.waitpid(pid, 0)

stop = threading.Event()
threads, failure = [], None
for _ in range(10000):
    t = threading.Thread(target=stop.wait)
    try:
        t.start()
    except RuntimeError as e:
        failure = e
        break
    threads.append(t)
stop.set()
for t in threads:
    t.join()
if failure is None:
    bad.append("started 10000 threads")
else:
    good.append("thread start failed after %d threads (%s)" % (len(threads), failure))
    if len(threads) > 300:
        bad.append("%d threads at once, more than the pids limit" % len(threads))

# Control: with everything reaped, the session can fork again.
time.sleep(0.2)
pid = os.fork()
if pid == 0:
    os._exit(3)
_, status = os.waitpid(pid, 0)
if os.waitstatus_to_exitcode(status) == 3:
    good.append("control: fork works again after reaping")
else:
    bad.append("control failed: fork after reaping")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

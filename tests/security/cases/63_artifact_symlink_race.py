# case: race the server's artifact copy: background processes keep swapping /mnt/data/raceN between a regular file and a symlink to a host secret file (or /etc/shadow) while the server scans and copies
# defence: the server opens each file once with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) / O_NOFOLLOW and copies from that descriptor (no check-then-open)
# expect: status=ok
# expect: out-lacks=@HOST_SECRET@
# args: --out @OUT_DIR@
import os
import time

TARGETS = ["@HOST_SECRET_FILE@", "/etc/shadow", "/etc/passwd"]
for worker in range(2):
    if os.fork() == 0:
        os.setsid()
        i = 0
        while True:  # until the session ends
            for n in range(3):
                name = "/mnt/data/race%d-%d" % (worker, n)
                temp = "/mnt/data/.swap%d-%d" % (worker, n)
                try:
                    if i % 2:
                        os.symlink(TARGETS[n], temp)
                    else:
                        with open(temp, "w") as f:
                            f.write("harmless %d\n" % i)
                    os.rename(temp, name)
                except OSError:
                    pass
            i += 1
time.sleep(1)
print("racing")

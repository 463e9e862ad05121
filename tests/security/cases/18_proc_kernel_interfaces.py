# case: reach the kernel through /proc and /dev: kcore, kmsg, sysrq-trigger, /dev/mem, disks, kallsyms addresses
# defence: minimal /dev; unprivileged uid with no capabilities in a user namespace
# expect: blocked
import os

bad, good = [], []
for path in ("/proc/kcore", "/proc/kmsg", "/proc/kpagecount", "/proc/kpageflags", "/proc/1/pagemap"):
    try:
        with open(path, "rb") as f:
            data = f.read(8)
        bad.append("read %d bytes of %s" % (len(data), path))
    except OSError as e:
        good.append("%s: %s" % (path, e.strerror))
try:
    with open("/proc/sysrq-trigger", "w") as f:
        f.write("h")
    bad.append("wrote /proc/sysrq-trigger")
except OSError as e:
    good.append("/proc/sysrq-trigger: %s" % e.strerror)
devs = sorted(os.listdir("/dev"))
expected = ["fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "urandom", "zero"]
if devs != expected:
    bad.append("/dev holds %s" % devs)
for path in ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/vda", "/dev/sda", "/dev/ptmx",
             "/dev/tty", "/dev/fuse", "/dev/net/tun", "/dev/kvm", "/dev/userfaultfd", "/dev/vsock"):
    if os.path.exists(path):
        bad.append("%s exists" % path)
with open("/proc/kallsyms") as f:
    nonzero = [line for line in (f.readline() for _ in range(2000)) if line and not line.startswith("0000000000000000")]
if nonzero:
    bad.append("kernel addresses visible in /proc/kallsyms: %s" % nonzero[:2])
else:
    good.append("kallsyms addresses hidden")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

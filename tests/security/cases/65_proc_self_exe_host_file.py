# case: read a host file from outside the sandbox's root through the /proc/self/exe magic link (the session process's executable), and learn host paths from /proc/self/maps
# defence: sessions should run an executable the sandbox can see anyway (e.g. a sealed memfd copy, as runc does), so /proc/self/exe leads to nothing of the host
# expect: blocked
import os

bad, good = [], []
allowed = ("/usr/", "/etc/", "/tmp/", "/mnt/data/", "/dev/", "memfd:", "/memfd:")
target = os.readlink("/proc/self/exe")
if not target.startswith(allowed):
    try:
        with open("/proc/self/exe", "rb") as f:
            size = len(f.read())
        bad.append("/proc/self/exe is the host file %s, readable (%d bytes)" % (target, size))
    except OSError as e:
        good.append("/proc/self/exe %s: %s" % (target, e.strerror))
else:
    good.append("/proc/self/exe is %s" % target)
with open("/proc/self/maps") as f:
    mapped = {line.split()[5] for line in f if len(line.split()) >= 6 and line.split()[5].startswith("/")}
outside = sorted(p for p in mapped if not p.startswith(allowed) and not os.path.exists(p))
if outside:
    bad.append("/proc/self/maps names host paths not in the sandbox: %s" % outside)
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

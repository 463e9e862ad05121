# case: overwrite the host binary behind /proc/self/exe (the runc CVE-2019-5736 pattern): open it, or a /proc/self/map_files entry, for writing
# defence: the binary is owned by an id unmapped in the user namespace and not writable by others; map_files needs CAP_SYS_ADMIN in the initial namespace
# expect: blocked
import os

bad, good = [], []
for path in ["/proc/self/exe", "/proc/1/exe"]:
    try:
        fd = os.open(path, os.O_WRONLY)
        os.close(fd)
        bad.append("opened %s for writing" % path)
    except OSError as e:
        good.append("%s O_WRONLY: %s" % (path, e.strerror))
# Through an O_PATH descriptor re-opened by its /proc/self/fd link.
fd = os.open("/proc/self/exe", os.O_PATH)
try:
    os.close(os.open("/proc/self/fd/%d" % fd, os.O_WRONLY))
    bad.append("reopened the O_PATH descriptor of the exe for writing")
except OSError as e:
    good.append("O_PATH reopen: %s" % e.strerror)
os.close(fd)
for name in sorted(os.listdir("/proc/self/map_files"))[:3]:
    try:
        os.close(os.open("/proc/self/map_files/" + name, os.O_RDWR))
        bad.append("opened map_files/%s read-write" % name)
    except OSError as e:
        good.append("map_files/%s: %s" % (name, e.strerror))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

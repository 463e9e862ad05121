# case: tamper with the shared runtime in /usr (replace python, plant a .pth or a library)
# defence: /usr bound read-only (EROFS; files that exist are also refused by ownership, EACCES, which the kernel checks first)
# expect: blocked
import errno
import os

bad, good = [], []
attempts = [
    ("append to /usr/bin/python3", lambda: open("/usr/bin/python3", "ab").close()),
    ("create /usr/pwned", lambda: open("/usr/pwned", "w").close()),
    ("create a .pth in site-packages", lambda: open("/usr/lib/python3/dist-packages/zz_pwned.pth", "w").close()),
    ("mkdir /usr/lib/pwned", lambda: os.mkdir("/usr/lib/pwned")),
    ("chmod /usr/bin/python3", lambda: os.chmod("/usr/bin/python3", 0o777)),
    ("rename in /usr/bin", lambda: os.rename("/usr/bin/env", "/usr/bin/env2")),
    ("unlink /usr/bin/env", lambda: os.unlink("/usr/bin/env")),
    ("symlink in /usr/local/bin", lambda: os.symlink("/tmp/x", "/usr/local/bin/python3")),
]
for label, attempt in attempts:
    try:
        attempt()
        bad.append("%s succeeded" % label)
    except OSError as e:
        if e.errno == errno.EROFS or (e.errno == errno.EACCES and label.startswith("append")):
            good.append("%s %s" % (label, errno.errorcode[e.errno]))
        else:
            bad.append("%s: %s, expected EROFS (is /usr read-only?)" % (label, e.strerror))
with open("/proc/self/mountinfo") as f:
    for line in f:
        fields = line.split()
        if fields[4] == "/usr" and "ro" not in fields[5].split(","):
            bad.append("/usr is mounted %s" % fields[5])
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: /usr mounted ro;", "; ".join(good))

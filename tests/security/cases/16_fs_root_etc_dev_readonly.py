# case: write to /, /etc (ld.so.preload, passwd, hosts, resolv.conf), /dev and /run
# defence: the new root is a tmpfs remounted read-only, /dev remounted read-only, /etc entries bound read-only (EROFS; existing files owned by the sandbox's root are refused first by ownership, EACCES)
# expect: blocked
import errno
import os

bad, good = [], []
attempts = [
    ("create /pwned", lambda: open("/pwned", "w").close()),
    ("create /etc/ld.so.preload", lambda: open("/etc/ld.so.preload", "w").close()),
    ("write /etc/passwd", lambda: open("/etc/passwd", "a").close()),
    ("write /etc/hosts", lambda: open("/etc/hosts", "a").close()),
    ("write /etc/resolv.conf", lambda: open("/etc/resolv.conf", "a").close()),
    ("write /etc/ssl/openssl.cnf", lambda: open("/etc/ssl/openssl.cnf", "a").close()),
    ("create /dev/pwned", lambda: open("/dev/pwned", "w").close()),
    ("mkdir /run/pwned", lambda: os.mkdir("/run/pwned")),
    ("replace /dev/null link", lambda: os.symlink("/tmp/x", "/dev/stdin2")),
    ("mkdir /mnt/other", lambda: os.mkdir("/mnt/other")),
]
for label, attempt in attempts:
    try:
        attempt()
        bad.append("%s succeeded" % label)
    except OSError as e:
        if e.errno == errno.EROFS or (e.errno == errno.EACCES and label.startswith("write")):
            good.append("%s %s" % (label, errno.errorcode[e.errno]))
        else:
            bad.append("%s: %s, expected EROFS" % (label, e.strerror))
with open("/proc/self/mountinfo") as f:
    for line in f:
        fields = line.split()
        if (fields[4] in ("/", "/dev") or fields[4].startswith("/etc/")) and "ro" not in fields[5].split(","):
            bad.append("%s is mounted %s" % (fields[4], fields[5]))
# Control: the two writable places are writable.
for path in ("/tmp/ok", "/mnt/data/ok"):
    with open(path, "w") as f:
        f.write("ok")
    os.unlink(path)
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: /, /dev, /etc/* mounted ro;", "; ".join(good), "(/tmp and /mnt/data writable)")

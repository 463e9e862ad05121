# case: personality(): turn off ASLR (ADDR_NO_RANDOMIZE), READ_IMPLIES_EXEC, 32-bit personality
# defence: seccomp: personality allowed only as a query (0xffffffff) or PER_LINUX
# expect: blocked
import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
bad, good = [], []


def sc(nr, *args):
    """A raw x86_64 system call; integers go as 64-bit values. Returns (result, errno)."""
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r, ctypes.get_errno()


def refused(label, nr, *args, want=(errno.EPERM,)):
    r, e = sc(nr, *args)
    name = errno.errorcode.get(e, str(e))
    if r == -1 and e in want:
        good.append("%s %s" % (label, name))
    else:
        bad.append("%s returned %d (%s), expected %s" % (
            label, r, name, "/".join(errno.errorcode[w] for w in want)))
    return r


def report():
    for b in bad:
        print("ESCAPED:", b)
    if not bad:
        print("BLOCKED:", "; ".join(good))

import subprocess

for value, name in ((0x0040000, "ADDR_NO_RANDOMIZE"), (0x0400000, "READ_IMPLIES_EXEC"),
                    (0x0008, "PER_LINUX32"), (0x0040000 | (1 << 32), "ADDR_NO_RANDOMIZE|1<<32")):
    refused("personality(%s)" % name, 135, value)
r, e = sc(135, 0xFFFFFFFF)
if r < 0 or (r & 0x0040000):
    bad.append("personality query returned %d (%s)" % (r, errno.errorcode.get(e, e)))
else:
    good.append("query allowed (0x%x)" % r)
p = subprocess.run(["/usr/bin/setarch", "x86_64", "-R", "/usr/bin/true"], capture_output=True, text=True)
if p.returncode == 0:
    bad.append("setarch -R (no ASLR) ran")
else:
    good.append("setarch -R failed: %s" % p.stderr.strip()[:80])
report()

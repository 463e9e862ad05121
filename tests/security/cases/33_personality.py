# case: personality(): turn off ASLR (ADDR_NO_RANDOMIZE), READ_IMPLIES_EXEC, 32-bit personality
# defence: seccomp: personality allowed only as a query (0xffffffff) or PER_LINUX
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

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

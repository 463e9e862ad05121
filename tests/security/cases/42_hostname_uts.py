# case: learn or change the host's name (sethostname, setdomainname, /proc/sys/kernel/hostname)
# defence: UTS namespace with hostname "pycell"; no CAP_SYS_ADMIN to change it
# expect: blocked
import ctypes
import errno
import os
import socket

bad, good = [], []
for source, name in (("gethostname", socket.gethostname()), ("uname", os.uname().nodename),
                     ("/etc/hostname", open("/etc/hostname").read().strip()),
                     ("/proc/sys/kernel/hostname", open("/proc/sys/kernel/hostname").read().strip())):
    if name != "pycell":
        bad.append("%s says %r" % (source, name))
with open("/proc/sys/kernel/domainname") as f:
    domain = f.read().strip()
if domain not in ("", "(none)"):
    bad.append("domain name %r" % domain)
libc = ctypes.CDLL(None, use_errno=True)
for fn, label in ((libc.sethostname, "sethostname"), (libc.setdomainname, "setdomainname")):
    ctypes.set_errno(0)
    if fn(b"pwned", 5) == 0:
        bad.append("%s succeeded" % label)
    else:
        good.append("%s %s" % (label, errno.errorcode.get(ctypes.get_errno())))
if socket.gethostname() != "pycell":
    bad.append("hostname changed to %r" % socket.gethostname())
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: hostname pycell;", "; ".join(good))

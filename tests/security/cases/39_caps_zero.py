# case: use or regain capabilities (in this process, in an exec'd child, by capset)
# defence: bounding, ambient, inheritable, permitted and effective sets all emptied
# expect: blocked
import ctypes
import errno
import os
import subprocess

bad, good = [], []


def caps_of(text, who):
    fields = dict(l.split(":", 1) for l in text.splitlines() if ":" in l)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        value = int(fields[key].strip(), 16)
        if value:
            bad.append("%s %s = %x" % (who, key, value))
    good.append("%s all zero" % who)


with open("/proc/self/status") as f:
    caps_of(f.read(), "self")
caps_of(subprocess.run(["/usr/bin/cat", "/proc/self/status"], capture_output=True, text=True).stdout,
        "exec'd child")
with open("/proc/1/status") as f:
    fields = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
if int(fields["CapBnd"].strip(), 16):
    bad.append("init's bounding set is %s" % fields["CapBnd"].strip())

libc = ctypes.CDLL(None, use_errno=True)


class Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


header = Header(0x20080522, 0)
data = (Data * 2)()
data[0].effective = data[0].permitted = (1 << 13) | (1 << 21)  # CAP_NET_RAW, CAP_SYS_ADMIN
ctypes.set_errno(0)
if libc.capset(ctypes.byref(header), data) == 0:
    bad.append("capset raised CAP_NET_RAW|CAP_SYS_ADMIN")
else:
    good.append("capset %s" % errno.errorcode.get(ctypes.get_errno()))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

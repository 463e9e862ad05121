# case: reconfigure the session's network (add an address to lo over rtnetlink, take lo down by ioctl) to prepare an escape or break the sandbox's loopback
# defence: no CAP_NET_ADMIN (all capabilities dropped); SIOCSIFFLAGS is not in the seccomp ioctl allowlist
# expect: blocked
import ctypes
import errno
import socket
import struct

bad, good = [], []
# RTM_NEWADDR 10.99.0.1/8 on lo (index 1), asking for an acknowledgement.
payload = struct.pack("=BBBBI", socket.AF_INET, 8, 0, 0, 1)
for attr_type in (1, 2):  # IFA_ADDRESS, IFA_LOCAL
    payload += struct.pack("=HH4s", 8, attr_type, socket.inet_aton("10.99.0.1"))
header = struct.pack("=IHHII", 16 + len(payload), 20, 0x1 | 0x4 | 0x400 | 0x200, 1, 0)
nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
nl.settimeout(3)
nl.bind((0, 0))
nl.send(header + payload)
reply = nl.recv(65536)
nl.close()
length, msg_type = struct.unpack("=IH", reply[:6])
if msg_type == 2:  # NLMSG_ERROR
    code = struct.unpack("=i", reply[16:20])[0]
    if code == 0:
        bad.append("RTM_NEWADDR added 10.99.0.1 to lo")
    elif -code == errno.EPERM:
        good.append("RTM_NEWADDR EPERM")
    else:
        bad.append("RTM_NEWADDR: unexpected %s" % errno.errorcode.get(-code, code))
else:
    bad.append("RTM_NEWADDR: unexpected reply type %d" % msg_type)
# SIOCSIFFLAGS lo down.
libc = ctypes.CDLL(None, use_errno=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ifr = ctypes.create_string_buffer(struct.pack("16sH", b"lo", 0), 40)
ctypes.set_errno(0)
if libc.ioctl(s.fileno(), ctypes.c_ulong(0x8914), ifr) == 0:
    bad.append("SIOCSIFFLAGS took lo down")
else:
    good.append("SIOCSIFFLAGS %s" % errno.errorcode.get(ctypes.get_errno()))
s.close()
if [name for _, name in socket.if_nameindex()] != ["lo"]:
    bad.append("interfaces changed")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

# case: AF_PACKET sockets (link-layer sniffing and injection)
# defence: seccomp socket() filter (AF_UNIX/INET/INET6/NETLINK_ROUTE only); the probe with an invalid type gets EPERM from the filter where the kernel would say EINVAL
# expect: blocked
import ctypes
import errno
import socket

libc = ctypes.CDLL(None, use_errno=True)
bad, good = [], []
AF_PACKET = 17
ETH_P_ALL = 0x0300  # htons(0x0003)
for stype, proto, label in ((socket.SOCK_RAW, ETH_P_ALL, "SOCK_RAW/ETH_P_ALL"),
                            (socket.SOCK_DGRAM, ETH_P_ALL, "SOCK_DGRAM/ETH_P_ALL"),
                            (99, 0, "invalid type 99 (filter probe)")):
    ctypes.set_errno(0)
    fd = libc.socket(AF_PACKET, stype, proto)
    e = ctypes.get_errno()
    if fd >= 0:
        libc.close(fd)
        bad.append("AF_PACKET %s opened" % label)
    elif e == errno.EPERM:
        good.append("AF_PACKET %s EPERM" % label)
    else:
        bad.append("AF_PACKET %s: %s, expected EPERM from the filter" % (label, errno.errorcode.get(e, e)))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", ", ".join(good))

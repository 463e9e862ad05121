# case: every other socket family (AF_ALG, AF_KEY, AF_BLUETOOTH, AF_XDP, AF_CAN, ...) and netlink protocols other than NETLINK_ROUTE (audit, uevent, netfilter, ...)
# defence: seccomp socket() filter; invalid type 99 shows the refusal comes from the filter (the kernel would say EINVAL)
# expect: blocked
import ctypes
import errno

libc = ctypes.CDLL(None, use_errno=True)
ALLOWED = {1, 2, 10, 16}  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK (route only, below)
bad, refused = [], []
for family in range(0, 46):
    if family in ALLOWED:
        continue
    ctypes.set_errno(0)
    fd = libc.socket(family, 99, 0)
    e = ctypes.get_errno()
    if fd >= 0:
        libc.close(fd)
        bad.append("family %d: socket created" % family)
    elif e != errno.EPERM:
        bad.append("family %d: %s, expected EPERM from the filter" % (family, errno.errorcode.get(e, e)))
    else:
        refused.append(family)
AF_NETLINK, SOCK_RAW = 16, 3
nl_refused = []
for proto in range(1, 23):
    ctypes.set_errno(0)
    fd = libc.socket(AF_NETLINK, SOCK_RAW, proto)
    e = ctypes.get_errno()
    if fd >= 0:
        libc.close(fd)
        bad.append("netlink protocol %d: socket created" % proto)
    elif e != errno.EPERM:
        bad.append("netlink protocol %d: %s, expected EPERM" % (proto, errno.errorcode.get(e, e)))
    else:
        nl_refused.append(proto)
# Control: NETLINK_ROUTE itself stays usable (Python's socket.if_nameindex needs it).
fd = libc.socket(AF_NETLINK, SOCK_RAW, 0)
if fd < 0:
    bad.append("control failed: NETLINK_ROUTE socket refused, so the filter test proves nothing")
else:
    libc.close(fd)
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: families %s EPERM; netlink protocols %s EPERM" % (refused, nl_refused))

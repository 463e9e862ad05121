# case: AF_VSOCK sockets (talk to the hypervisor / VM host; never connected here, only created)
# defence: seccomp socket() filter
# expect: blocked
import ctypes
import errno

libc = ctypes.CDLL(None, use_errno=True)
AF_VSOCK = 40
bad, good = [], []
for stype, label in ((1, "SOCK_STREAM"), (2, "SOCK_DGRAM"), (5, "SOCK_SEQPACKET"), (99, "type 99 (filter probe)")):
    ctypes.set_errno(0)
    fd = libc.socket(AF_VSOCK, stype, 0)
    e = ctypes.get_errno()
    if fd >= 0:
        libc.close(fd)
        bad.append("AF_VSOCK %s socket created" % label)
    elif e == errno.EPERM:
        good.append("AF_VSOCK %s EPERM" % label)
    else:
        bad.append("AF_VSOCK %s: %s, expected EPERM from the filter" % (label, errno.errorcode.get(e, e)))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", ", ".join(good))

# case: open raw IP sockets (craft packets, sniff loopback)
# defence: every capability dropped (no CAP_NET_RAW in the namespace that owns the network)
# expect: blocked
import errno
import socket

bad, good = [], []
for family, proto, label in (
    (socket.AF_INET, socket.IPPROTO_ICMP, "AF_INET/SOCK_RAW/ICMP"),
    (socket.AF_INET, socket.IPPROTO_RAW, "AF_INET/SOCK_RAW/IPPROTO_RAW"),
    (socket.AF_INET, socket.IPPROTO_TCP, "AF_INET/SOCK_RAW/TCP"),
    (socket.AF_INET6, socket.IPPROTO_ICMPV6, "AF_INET6/SOCK_RAW/ICMPV6"),
):
    try:
        s = socket.socket(family, socket.SOCK_RAW, proto)
        s.close()
        bad.append("%s opened" % label)
    except OSError as e:
        if e.errno == errno.EPERM:
            good.append("%s EPERM" % label)
        else:
            bad.append("%s: unexpected %r" % (label, e))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", ", ".join(good))

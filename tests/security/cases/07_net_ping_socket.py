# case: unprivileged ICMP "ping" sockets (SOCK_DGRAM/IPPROTO_ICMP)
# defence: the fresh network namespace's net.ipv4.ping_group_range excludes the session's gid
# expect: blocked
import errno
import socket

bad, good = [], []
for family, proto, label in ((socket.AF_INET, socket.IPPROTO_ICMP, "ICMP"),
                             (socket.AF_INET6, socket.IPPROTO_ICMPV6, "ICMPv6")):
    try:
        s = socket.socket(family, socket.SOCK_DGRAM, proto)
        s.close()
        bad.append("%s ping socket opened" % label)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            good.append("%s ping socket %s" % (label, errno.errorcode[e.errno]))
        else:
            bad.append("%s: unexpected %r" % (label, e))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", ", ".join(good))

# case: UDP datagrams off the box: public DNS, the gateway, broadcast, multicast, IPv6
# defence: network namespace with only lo
# expect: blocked
import errno
import socket

bad, good = [], []
targets = [
    (socket.AF_INET, ("8.8.8.8", 53)),
    (socket.AF_INET, ("10.0.2.2", 53)),
    (socket.AF_INET, ("255.255.255.255", 9)),
    (socket.AF_INET, ("224.0.0.251", 5353)),
    (socket.AF_INET6, ("2001:4860:4860::8888", 53)),
    (socket.AF_INET6, ("ff02::fb", 5353)),
]
for family, addr in targets:
    s = socket.socket(family, socket.SOCK_DGRAM)
    if addr[0] == "255.255.255.255":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    try:
        s.sendto(b"\x00" * 12, addr)
        bad.append("datagram to %s was sent" % (addr,))
    except OSError as e:
        if e.errno in (errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.ENODEV):
            good.append("%s %s" % (addr[0], errno.errorcode[e.errno]))
        else:
            bad.append("sendto %s: unexpected %r" % (addr, e))
    finally:
        s.close()
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", ", ".join(good))

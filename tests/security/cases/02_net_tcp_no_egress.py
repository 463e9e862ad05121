# case: TCP connect to addresses off the box: the host's gateway, public DNS, cloud metadata, IPv6, the host's own addresses
# defence: network namespace with only lo: every non-loopback destination is ENETUNREACH
# expect: blocked
import errno
import socket

targets = [
    (socket.AF_INET, ("10.0.2.2", 80)),          # typical VM/container gateway
    (socket.AF_INET, ("8.8.8.8", 53)),
    (socket.AF_INET, ("1.1.1.1", 443)),
    (socket.AF_INET, ("169.254.169.254", 80)),  # cloud metadata service
    (socket.AF_INET, ("192.168.1.1", 80)),
    (socket.AF_INET6, ("2001:4860:4860::8888", 53)),
    (socket.AF_INET6, ("2606:4700:4700::1111", 443)),
]
for ip in "@HOST_IPS@".split(","):
    if ip:
        targets.append((socket.AF_INET, (ip, int("@HOST_TCP_PORT@"))))
bad, good = [], []
for family, addr in targets:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(addr)
        bad.append("connected to %s" % (addr,))
    except OSError as e:
        if e.errno == errno.ENETUNREACH:
            good.append("%s ENETUNREACH" % addr[0])
        else:
            bad.append("connect %s failed with %r, not ENETUNREACH (is there a route?)" % (addr, e))
    finally:
        s.close()
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", ", ".join(good))

# case: resolve public names (through the resolver, and by asking public DNS servers directly)
# defence: network namespace with only lo; empty /etc/resolv.conf
# expect: blocked
import errno
import socket

bad, good = [], []
for name in ("pypi.org", "example.com", "github.com"):
    try:
        infos = socket.getaddrinfo(name, 443)
        bad.append("%s resolved to %s" % (name, sorted({i[4][0] for i in infos})))
    except socket.gaierror as e:
        good.append("%s: %s" % (name, e.strerror))
# A raw DNS query for example.com to public resolvers.
query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
         b"\x07example\x03com\x00\x00\x01\x00\x01")
for server in ("8.8.8.8", "1.1.1.1", "9.9.9.9"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(query, (server, 53))
        data, _ = s.recvfrom(512)
        bad.append("DNS answer from %s (%d bytes)" % (server, len(data)))
    except OSError as e:
        if getattr(e, "errno", None) == errno.ENETUNREACH:
            good.append("%s:53 ENETUNREACH" % server)
        else:
            bad.append("query to %s: unexpected %r" % (server, e))
    finally:
        s.close()
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

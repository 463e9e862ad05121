# case: reach services on the HOST's loopback: a TCP listener on the host's 127.0.0.1, an abstract unix socket, a UDP port
# defence: network namespace: the session's 127.0.0.1 and abstract socket names are its own
# expect: blocked
import errno
import socket

HOST_TCP_PORT = int("@HOST_TCP_PORT@")
HOST_UDP_PORT = int("@HOST_UDP_PORT@")

bad, good = [], []
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(3)
try:
    s.connect(("127.0.0.1", HOST_TCP_PORT))
    bad.append("connected to the host's TCP listener 127.0.0.1:@HOST_TCP_PORT@")
except OSError as e:
    if e.errno == errno.ECONNREFUSED:
        good.append("127.0.0.1:@HOST_TCP_PORT@ refused (own loopback)")
    else:
        bad.append("connect 127.0.0.1:@HOST_TCP_PORT@: unexpected %r" % e)
s.close()

u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    u.connect("\0@HOST_ABSTRACT@")
    bad.append("connected to the host's abstract socket @HOST_ABSTRACT@")
except OSError as e:
    if e.errno == errno.ECONNREFUSED:
        good.append("abstract socket refused")
    else:
        bad.append("abstract connect: unexpected %r" % e)
u.close()

# A datagram to the host's UDP port lands on our own loopback; the runner checks nothing arrived.
d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    d.sendto(b"pycell-sec", ("127.0.0.1", HOST_UDP_PORT))
except OSError:
    pass
d.close()

# The host's listeners must not show in our socket tables either.
port_hex = ":%04X" % HOST_TCP_PORT
for table in ("/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp"):
    with open(table) as f:
        if port_hex in f.read():
            bad.append("%s shows the host's port @HOST_TCP_PORT@/@HOST_UDP_PORT@" % table)
with open("/proc/net/unix") as f:
    if "@HOST_ABSTRACT@" in f.read():
        bad.append("/proc/net/unix lists the host's abstract socket")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

# case: two sessions running at once meet over abstract unix sockets (names need no file, so no mount namespace hides them): each binds a well-known name and a private one, looks for the other's in /proc/net/unix, connects and sends datagrams to the well-known names for 5 s
# defence: network namespace per session: the abstract socket namespace belongs to the network namespace, so each session has its own (the host's decoy name is not visible either)
# expect: blocked
# expect: runs-overlap
# runs: 2 parallel
import errno
import os
import socket
import time

token = os.urandom(6).hex()
MEET, MEET_DGRAM, MINE = "\0pycell-sec-abs-meet", "\0pycell-sec-abs-dgram", "\0pycell-sec-abs-" + token
bad, good = [], []

listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.setblocking(False)
try:
    listener.bind(MEET)
    listener.listen(8)
except OSError as e:
    bad.append("bind of the well-known name failed: %s (the other session holds it)" % e.strerror)
mine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
mine.bind(MINE)
mine.listen(1)
dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
dgram.setblocking(False)
try:
    dgram.bind(MEET_DGRAM)
except OSError as e:
    bad.append("bind of the datagram name failed: %s" % e.strerror)

saw_own_name = False
started = time.time()
while time.time() - started < 5:
    with open("/proc/net/unix") as f:
        table = f.read()
    for line in table.splitlines():
        fields = line.split()
        name = fields[-1] if len(fields) > 7 else ""
        if not name.startswith("@pycell-sec-abs-") or name in ("@pycell-sec-abs-meet",
                                                               "@pycell-sec-abs-dgram"):
            continue
        if name.endswith(token):
            saw_own_name = True
        else:
            bad.append("/proc/net/unix lists the other session's socket %s" % name)
    if "@HOST_ABSTRACT@" in table:
        bad.append("/proc/net/unix lists the host's abstract socket")
    # Whoever answers the well-known names must be this session itself.
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(1)
    try:
        c.connect(MEET)
        c.sendall(token.encode())
        conn, _ = listener.accept()
        conn.settimeout(1)
        got = conn.recv(64).decode()
        conn.close()
        if got != token:
            bad.append("the well-known stream name answered someone else (%r)" % got)
    except (BlockingIOError, InterruptedError):
        bad.append("connected to the well-known name, but it was not our listener")
    except OSError as e:
        bad.append("connect to our own well-known name failed: %s" % e.strerror)
    c.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(token.encode(), MEET_DGRAM)
    except OSError:
        pass
    s.close()
    while True:
        try:
            data = dgram.recv(64).decode()
        except OSError:
            break
        if data != token:
            bad.append("a datagram from the other session arrived (%r)" % data)
    time.sleep(0.1)

try:
    h = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    h.connect("\0@HOST_ABSTRACT@")
    bad.append("connected to the host's abstract socket")
except OSError as e:
    good.append("host decoy name: %s" % errno.errorcode.get(e.errno, e.errno))
if not saw_own_name:
    bad.append("control failed: our own name never showed in /proc/net/unix (the scan sees nothing)")
else:
    good.append("control: own name listed in /proc/net/unix")
bad = sorted(set(bad))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: for 5 s the well-known names answered only this session and no other "
          "session's socket was listed;", "; ".join(good))

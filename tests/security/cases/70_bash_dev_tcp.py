# case: bash's /dev/tcp and /dev/udp redirections (network without any socket code of our own): the host's TCP listener and UDP port on 127.0.0.1, the host's own addresses, public DNS, cloud metadata
# defence: network namespace with only lo (bash opens an ordinary socket, so the same isolation holds: refused on our own loopback, ENETUNREACH elsewhere)
# expect: blocked
import socket
import subprocess
import threading

bad, good = [], []
HOST_IPS = [a for a in "@HOST_IPS@".split(",") if a]


def bash(script):
    r = subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, timeout=20)
    return r.returncode, (r.stdout + r.stderr).strip().replace("\n", " / ")


# Control: bash's /dev/tcp works inside the session (a listener on the session's own loopback
# receives the line), so the refusals below come from the network, not from a missing feature.
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0))
srv.listen(1)
srv.settimeout(10)
received = []


def accept():
    try:
        conn, _ = srv.accept()
        received.append(conn.recv(64))
        conn.close()
    except OSError as e:
        received.append(repr(e).encode())


t = threading.Thread(target=accept)
t.start()
rc, out = bash("echo pycell-dev-tcp >/dev/tcp/127.0.0.1/%d" % srv.getsockname()[1])
t.join()
srv.close()
if rc == 0 and received and received[0].startswith(b"pycell-dev-tcp"):
    good.append("control: /dev/tcp to our own listener works")
else:
    bad.append("control failed: bash /dev/tcp to our own listener: rc %d %s %r" % (rc, out, received))

targets = [("127.0.0.1", "@HOST_TCP_PORT@", "the host's TCP listener")]
targets += [(ip, "@HOST_TCP_PORT@", "the host's address %s" % ip) for ip in HOST_IPS]
targets += [("1.1.1.1", "53", "public DNS"), ("169.254.169.254", "80", "cloud metadata")]
for ip, port, what in targets:
    rc, out = bash("exec 3<>/dev/tcp/%s/%s && echo CONNECTED" % (ip, port))
    if "CONNECTED" in out:
        bad.append("bash /dev/tcp reached %s (%s:%s)" % (what, ip, port))
    elif "refused" in out or "unreachable" in out:
        good.append("%s:%s %s" % (ip, port, "refused" if "refused" in out else "unreachable"))
    else:
        bad.append("bash /dev/tcp %s:%s failed oddly: %s" % (ip, port, out))
# UDP "connects" without a peer, so only the send can fail: off the box it must be unreachable;
# a datagram to 127.0.0.1 lands on our own loopback (the runner checks the host decoy got nothing).
rc, out = bash("echo pycell-sec >/dev/udp/8.8.8.8/53 && echo SENT")
if "SENT" in out:
    bad.append("bash /dev/udp sent a datagram to 8.8.8.8")
else:
    good.append("/dev/udp 8.8.8.8 unreachable" if "unreachable" in out else "/dev/udp 8.8.8.8: " + out)
bash("echo pycell-sec >/dev/udp/127.0.0.1/@HOST_UDP_PORT@")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

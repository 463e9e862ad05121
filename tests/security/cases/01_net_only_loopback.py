# case: look for a way out: any network interface besides loopback, any route
# defence: network namespace with only lo (net_ns.cc)
# expect: blocked
import os
import socket

bad = []
names = [name for _, name in socket.if_nameindex()]
if names != ["lo"]:
    bad.append("interfaces visible: %s" % names)
with open("/proc/net/dev") as f:
    dev = [line.split(":")[0].strip() for line in f.read().splitlines()[2:]]
if dev != ["lo"]:
    bad.append("/proc/net/dev lists %s" % dev)
with open("/proc/net/route") as f:
    routes = f.read().splitlines()[1:]
if routes:
    bad.append("IPv4 routes present: %s" % routes)
with open("/proc/net/ipv6_route") as f:
    v6 = [l for l in f.read().splitlines() if not l.rstrip().endswith(" lo")]
if v6:
    bad.append("IPv6 routes through other interfaces: %s" % v6)
if os.path.exists("/sys/class/net"):
    bad.append("/sys/class/net is visible")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: only lo (%s), no routes" % names)

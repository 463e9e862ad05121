# case: run as root or a real host user; become root (setuid(0)), add groups, rewrite the id maps
# defence: user namespace mapping inside 1000 to an unprivileged subordinate host id; setgroups denied
# expect: blocked
import os

bad, good = [], []
if os.getresuid() != (1000, 1000, 1000):
    bad.append("uids %s" % (os.getresuid(),))
if os.getresgid() != (1000, 1000, 1000):
    bad.append("gids %s" % (os.getresgid(),))
if os.getgroups() not in ([], [1000]):
    bad.append("supplementary groups %s" % os.getgroups())
good.append("uid/gid 1000, groups %s" % os.getgroups())
with open("/proc/self/uid_map") as f:
    uid_map = [line.split() for line in f if line.strip()]
for inside, outside, count in uid_map:
    if int(outside) < 100000 or int(count) != 1:
        bad.append("uid_map maps %s to host uid %s (count %s)" % (inside, outside, count))
good.append("uid_map %s" % [" ".join(m) for m in uid_map])
with open("/proc/self/setgroups") as f:
    if f.read().strip() != "deny":
        bad.append("setgroups is allowed in this namespace")


def write_uid_map():
    with open("/proc/self/uid_map", "w") as f:
        f.write("0 0 1\n")


for label, attempt in (("setuid(0)", lambda: os.setuid(0)), ("setgid(0)", lambda: os.setgid(0)),
                       ("setresuid(0,0,0)", lambda: os.setresuid(0, 0, 0)),
                       ("setgroups([0])", lambda: os.setgroups([0])),
                       ("write uid_map", write_uid_map)):
    try:
        attempt()
        bad.append("%s succeeded" % label)
    except OSError as e:
        good.append("%s %s" % (label, e.strerror))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

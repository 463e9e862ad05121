# case: shield the session from the OOM killer (oom_score_adj -1000) so the host kills something else first
# defence: user namespace: lowering oom_score_adj needs CAP_SYS_RESOURCE in the initial namespace, which the session never has
# expect: blocked
import errno

bad, good = [], []
with open("/proc/self/oom_score_adj") as f:
    before = int(f.read())
for value in ("-1000", "-1", str(before - 1)):
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(value)
        with open("/proc/self/oom_score_adj") as f:
            now = int(f.read())
        if now < before:
            bad.append("lowered oom_score_adj from %d to %d" % (before, now))
    except OSError as e:
        good.append("%s: %s" % (value, errno.errorcode.get(e.errno)))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: oom_score_adj stays at %d;" % before, "; ".join(good))

# case: run without no_new_privs or without the seccomp filter (check this process and an exec'd child; try to clear no_new_privs)
# defence: PR_SET_NO_NEW_PRIVS and a seccomp filter in mode 2, inherited across fork and exec
# expect: blocked
import ctypes
import subprocess

bad, good = [], []


def check(text, who):
    fields = {k: v.strip() for k, v in (l.split(":", 1) for l in text.splitlines() if ":" in l)}
    if fields.get("NoNewPrivs") != "1":
        bad.append("%s NoNewPrivs=%s" % (who, fields.get("NoNewPrivs")))
    if fields.get("Seccomp") != "2":
        bad.append("%s Seccomp=%s" % (who, fields.get("Seccomp")))
    good.append("%s NoNewPrivs=1 Seccomp=2 filters=%s" % (who, fields.get("Seccomp_filters")))


with open("/proc/self/status") as f:
    check(f.read(), "self")
check(subprocess.run(["/usr/bin/cat", "/proc/self/status"], capture_output=True, text=True).stdout,
      "exec'd child")
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS, PR_GET_SECCOMP = 38, 39, 21
libc.prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0)
if libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
    bad.append("no_new_privs was cleared")
if libc.prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2:
    bad.append("PR_GET_SECCOMP is not 2")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

# case: read the server's environment (tokens, CI variables, HOME=/root, host paths) from os.environ, /proc/self/environ and /proc/1/environ; the runner plants PYCELL_SEC_CANARY in pycell's own environment
# defence: the environment rebuilt from scratch for the session
# expect: blocked
import os

STATE = "@STATE_DIR@"
SUSPECT_NAMES = ("CI", "GITHUB_", "GITLAB_", "SUDO_", "SSH_", "AWS_", "AZURE_", "GOOGLE_", "GCP_",
                 "KUBERNETES_", "DOCKER_", "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH",
                 "PYTHONSTARTUP", "XDG_", "DBUS_", "INVOCATION_ID", "JOURNAL_STREAM", "PWD",
                 "OLDPWD", "PYCELL_SEC_CANARY", "MAIL", "SHELL")
SUSPECT_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "PRIVATE")
HOST_PATHS = ("/root", "/work", "/home/", "/var/lib/pycell", STATE)


def check(source, env):
    problems = []
    for name, value in env.items():
        if any(name == s or (s.endswith("_") and name.startswith(s)) for s in SUSPECT_NAMES):
            problems.append("%s has %s=%s" % (source, name, value[:60]))
        elif any(w in name.upper() for w in SUSPECT_WORDS):
            problems.append("%s has %s" % (source, name))
        if "canary-" in value:
            problems.append("%s carries the runner's canary in %s" % (source, name))
        if any(h in value for h in HOST_PATHS):
            problems.append("%s has a host path: %s=%s" % (source, name, value))
        # An absolute path a variable names must exist in here (or at least its parent folder),
        # else it describes the host.
        for part in value.replace("=", ":").split(":"):
            if (part.startswith("/") and not part.startswith("//") and name != "PATH"
                    and not os.path.exists(part) and not os.path.exists(os.path.dirname(part))):
                problems.append("%s: %s names %s, which is not in the sandbox" % (source, name, part))
    return problems


def parse(raw):
    env = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    return env


bad, good = [], []
bad += check("os.environ", dict(os.environ))
good.append("os.environ: %s" % sorted(os.environ))
with open("/proc/self/environ", "rb") as f:
    raw = f.read()
bad += check("/proc/self/environ", parse(raw))
good.append("/proc/self/environ: %s" % sorted(parse(raw)))
try:
    with open("/proc/1/environ", "rb") as f:
        bad += check("/proc/1/environ", parse(f.read()))
except PermissionError:
    good.append("/proc/1/environ EACCES")
if os.environ.get("HOME", "").startswith("/root"):
    bad.append("HOME is /root")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

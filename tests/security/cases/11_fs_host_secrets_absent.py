# case: read host secrets and private folders: /etc/shadow, /root, /home, ssh keys, sudoers, /var, the source tree
# defence: mount namespace: the new root holds only /usr and a short list of /etc entries
# expect: blocked
import os

bad, good = [], []
for path in ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh", "/etc/machine-id",
             "/root", "/home", "/var", "/srv", "/opt", "/boot", "/work", "/sys", "/lost+found",
             "/var/lib/pycell", "/var/run/docker.sock", "/run/docker.sock", "/etc/subuid"):
    try:
        os.lstat(path)
        try:
            with open(path, "rb") as f:
                f.read(1)
            bad.append("%s exists and is readable" % path)
        except IsADirectoryError:
            bad.append("%s exists: %s" % (path, sorted(os.listdir(path))[:10]))
        except OSError as e:
            bad.append("%s exists (%s)" % (path, e.strerror))
    except FileNotFoundError:
        good.append(path)
# /etc/passwd is the sandbox's own three lines, not the host's.
with open("/etc/passwd") as f:
    users = [line.split(":")[0] for line in f if line.strip()]
if users != ["root", "pycell", "nobody"]:
    bad.append("/etc/passwd lists host users: %s" % users)
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: absent: %s; /etc/passwd is the sandbox's" % ", ".join(good))

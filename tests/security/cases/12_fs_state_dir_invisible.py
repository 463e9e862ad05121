# case: find the server's state dir (other sessions' folders, caches, metadata) from inside a session
# defence: mount namespace + pivot_root: only this session's data/ and tmp/ are bound in, nothing above them
# expect: blocked
import os

STATE = "@STATE_DIR@"
bad, good = [], []
for path in (STATE, STATE + "/sessions", STATE + "/cache", "/var/lib/pycell", "/work/main/var",
             "/work/main"):
    if os.path.lexists(path):
        bad.append("%s is visible" % path)
    else:
        good.append(path)
# Nothing in our mount table or root names the host folders.
for table in ("/proc/self/mountinfo", "/proc/1/mountinfo"):
    try:
        with open(table) as f:
            text = f.read()
    except PermissionError:
        continue
    if STATE in text or "/sessions/" in text:
        bad.append("%s names the state dir" % table)
# /mnt/data and /tmp are the roots of their own filesystems, not folders of a bigger one.
with open("/proc/self/mountinfo") as f:
    for line in f:
        fields = line.split()
        if fields[4] in ("/mnt/data", "/tmp") and fields[3] != "/":
            bad.append("%s is a sub-folder (%s) of a host filesystem" % (fields[4], fields[3]))
# Walk everything writable or generated for folders that look like other sessions.
seen = 0
for top in ("/", "/tmp", "/mnt", "/dev", "/run", "/etc"):
    for root, dirs, files in os.walk(top):
        if root == "/":
            dirs[:] = [d for d in dirs if d not in ("proc", "usr", "tmp", "mnt", "dev", "run", "etc")]
        for name in dirs + files:
            seen += 1
            if name.startswith("sess_") or name == "sessions":
                bad.append("found %s" % os.path.join(root, name))
# The parent of /mnt/data leads nowhere: ".." of the mount root is our own /mnt.
if os.stat("/mnt/data/..").st_ino != os.stat("/mnt").st_ino:
    bad.append("/mnt/data/.. is not /mnt")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: not visible: %s; %d entries walked, no session folders" % (", ".join(good), seen))

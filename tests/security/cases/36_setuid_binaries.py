# case: gain privilege through setuid/setgid binaries (su, passwd, mount, chfn, newgrp, ...) and a file-capability binary (gst-ptp-helper); watch each one's credentials while it runs
# defence: no_new_privs, nosuid mounts, setuid owners unmapped in the user namespace
# expect: blocked
import os
import stat
import subprocess
import time

candidates = []
for folder in ("/usr/bin", "/usr/sbin", "/usr/lib/dbus-1.0", "/usr/libexec",
               "/usr/lib/openssh", "/usr/lib/x86_64-linux-gnu/gstreamer1.0/gstreamer-1.0"):
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        continue
    for name in names:
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        privileged = st.st_mode & (stat.S_ISUID | stat.S_ISGID)
        try:
            privileged = privileged or os.getxattr(path, "security.capability", follow_symlinks=False)
        except OSError:
            pass
        if stat.S_ISREG(st.st_mode) and privileged and name != "ssh-agent":  # ssh-agent daemonizes
            candidates.append(path)

bad, good, watched = [], [], []
for path in candidates:
    try:
        p = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    except OSError as e:
        good.append("%s: %s" % (os.path.basename(path), e.strerror))
        continue
    seen = set()
    deadline = time.time() + 0.5
    while time.time() < deadline and p.poll() is None:
        try:
            with open("/proc/%d/status" % p.pid) as f:
                lines = f.read().splitlines()
        except OSError:
            break
        fields = dict(l.split(":", 1) for l in lines if ":" in l)
        if fields.get("Name", "").strip() == os.path.basename(path)[:15]:
            seen.add((tuple(fields["Uid"].split()),
                      tuple(fields["Gid"].split()), fields["CapEff"].strip(),
                      fields["CapPrm"].strip()))
        time.sleep(0.002)
    p.kill()
    p.communicate()
    for uids, gids, capeff, capprm in seen:
        if set(uids) != {"1000"} or set(gids) != {"1000"} or int(capeff, 16) or int(capprm, 16):
            bad.append("%s ran with uid %s gid %s CapEff %s CapPrm %s" % (path, uids, gids, capeff, capprm))
    if seen:
        watched.append(os.path.basename(path))
if "su" not in watched:
    bad.append("could not watch su run (candidates %s, watched %s): inconclusive" % (candidates, watched))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: %d privileged binaries, watched %s: all uid/gid 1000 with no capabilities; %s" % (
        len(candidates), ", ".join(watched), "; ".join(good)))

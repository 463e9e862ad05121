# case: hostile zip and tar archives uploaded as input files (members named ../../../tmp/..., absolute names, symlinks to a host secret file, its folder, /usr/lib and upwards with members written through them, hard links to /etc/shadow and to the host secret, a device node, a setuid file), then extracted inside the session with Python's zipfile and tarfile (3.11.2 here: no extraction filter, so ../ and links are followed as written)
# defence: the server never extracts (the archives arrive in /mnt/data byte for byte); inside, extraction only reaches the session's own mounts: ../ and absolute names land in the private /tmp or hit the read-only root (EROFS), host paths do not exist, /usr is read-only, no CAP_MKNOD, nosuid; the runner checks nothing landed on the host and the exported artifacts hold no secret
# expect: blocked
# expect: host-absent=/tmp/@HOST_ESCAPE_NAME@*
# expect: host-absent=/usr/lib/@HOST_ESCAPE_NAME@*
# expect: host-absent=@HOST_SECRET_DIR@/@HOST_ESCAPE_NAME@*
# expect: out-lacks=@HOST_SECRET@
# expect: out-files=extract-tar/setuid-sh,extract-zip/ok/link-to-secret,extract-zip/ok/normal.txt,extract-zip/tmp/@HOST_ESCAPE_NAME@-zip,extract-zip/tmp/@HOST_ESCAPE_NAME@-zip-absolute
# args: --file @EVIL_ZIP@ --file @EVIL_TAR@ --out @OUT_DIR@
import errno
import os
import stat
import tarfile
import zipfile

SECRET = "@HOST_SECRET@"
NAME = "@HOST_ESCAPE_NAME@"
bad, good = [], []

# 1. The server handed the archives over as they are: nothing extracted, nothing else placed.
listing = sorted(os.listdir("/mnt/data"))
if listing != ["evil.tar", "evil.zip"]:
    bad.append("/mnt/data holds %s, expected only evil.tar and evil.zip (did the server extract?)"
               % listing)
if not zipfile.is_zipfile("/mnt/data/evil.zip") or not tarfile.is_tarfile("/mnt/data/evil.tar"):
    bad.append("the archives did not arrive intact")
else:
    good.append("archives arrived unextracted")

# 2. Extract them naively, member by member, and see where each one went.
os.makedirs("/mnt/data/extract-zip")
with zipfile.ZipFile("/mnt/data/evil.zip") as z:
    for member in z.namelist():
        try:
            z.extract(member, "/mnt/data/extract-zip")
        except OSError as e:
            good.append("zip %s: %s" % (member[-40:], errno.errorcode.get(e.errno, e.errno)))
os.makedirs("/mnt/data/extract-tar")
with tarfile.open("/mnt/data/evil.tar") as t:
    for member in t.getmembers():
        try:
            t.extract(member, "/mnt/data/extract-tar", set_attrs=True)
            good.append("tar %s extracted" % member.name[-40:])
        except (OSError, tarfile.TarError, KeyError) as e:
            why = errno.errorcode.get(e.errno, e.errno) if isinstance(e, OSError) else repr(e)
            good.append("tar %s: %s" % (member.name[-40:], why))

# Whatever left the extraction folders can only be in this session's own /tmp.
for path in ("/tmp/%s-zip" % NAME, "/tmp/%s-tar" % NAME, "/tmp/%s-tar-absolute" % NAME,
             "/tmp/%s-tar-via-link" % NAME):
    if os.path.exists(path):
        good.append("%s landed in the session's private /tmp" % path)
for root, dirs, files in os.walk("/mnt/data/extract-tar"):
    for name in files + dirs:
        path = os.path.join(root, name)
        st = os.lstat(path)
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            bad.append("extraction made a device node %s" % path)
        if stat.S_ISLNK(st.st_mode):
            try:
                with open(path, "rb") as f:
                    if SECRET.encode() in f.read():
                        bad.append("read the host secret through extracted link %s" % path)
            except OSError as e:
                good.append("link %s: %s" % (name, errno.errorcode.get(e.errno, e.errno)))
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                if SECRET.encode() in f.read():
                    bad.append("extracted file %s holds the host secret" % path)
            if st.st_mode & stat.S_ISUID:
                good.append("%s kept its setuid bit (on a nosuid mount: it gives nothing)" % name)
if os.path.exists("/usr/lib/%s-planted" % NAME):
    bad.append("a member was written into /usr/lib")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

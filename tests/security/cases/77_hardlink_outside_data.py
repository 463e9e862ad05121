# case: hard-link files from outside /mnt/data into it so the server exports them as artifacts (a link is a regular file, so a no-symlink scan would take it): the python binary, /etc/ld.so.cache, a file in /tmp, /proc/self/exe, a descriptor's file through /proc/self/fd with AT_SYMLINK_FOLLOW, AT_EMPTY_PATH; the host secret file by its host path
# defence: /mnt/data is its own mount (a tmpfs of its own): the kernel refuses links across mounts (EXDEV), AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH, host paths do not exist inside; the server takes only what is beneath /mnt/data
# expect: blocked
# expect: out-files=ok.txt,ok-link.txt
# expect: out-lacks=@HOST_SECRET@
# args: --out @OUT_DIR@
import errno
import os
import sys

AT_SYMLINK_FOLLOW, AT_EMPTY_PATH = 0x400, 0x1000
bad, good = [], []
with open("/tmp/scratch.txt", "w") as f:
    f.write("from /tmp\n")


def try_link(label, src, dst, **kw):
    try:
        os.link(src, dst, **kw)
        bad.append("linked %s into /mnt/data (%s)" % (label, dst))
    except OSError as e:
        if e.errno in (errno.EXDEV, errno.ENOENT, errno.EPERM, errno.EACCES):
            good.append("%s %s" % (label, errno.errorcode[e.errno]))
        else:
            bad.append("%s: %s" % (label, e.strerror))


try_link("python", os.path.realpath(sys.executable), "/mnt/data/python")
try_link("/etc/ld.so.cache", "/etc/ld.so.cache", "/mnt/data/ld.so.cache")
try_link("/tmp file", "/tmp/scratch.txt", "/mnt/data/tmp.txt")
try_link("/proc/self/exe", "/proc/self/exe", "/mnt/data/exe", follow_symlinks=True)
try_link("host secret file", "@HOST_SECRET_FILE@", "/mnt/data/secret.txt")
fd = os.open(os.path.realpath(sys.executable), os.O_RDONLY)
try_link("/proc/self/fd/N of python", "/proc/self/fd/%d" % fd, "/mnt/data/fd-python",
         follow_symlinks=True)
# linkat(fd, "", AT_EMPTY_PATH): links whatever the descriptor names, wherever it lives.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
ctypes.set_errno(0)
if libc.linkat(fd, b"", -100, b"/mnt/data/empty-path", AT_EMPTY_PATH) == 0:
    bad.append("linkat(AT_EMPTY_PATH) linked the python binary into /mnt/data")
else:
    good.append("linkat(AT_EMPTY_PATH) %s" % errno.errorcode.get(ctypes.get_errno()))
os.close(fd)

# Control: a hard link inside /mnt/data works; both names are exported as regular files.
with open("/mnt/data/ok.txt", "w") as f:
    f.write("made inside /mnt/data\n")
os.link("/mnt/data/ok.txt", "/mnt/data/ok-link.txt")
good.append("control: a link inside /mnt/data works")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

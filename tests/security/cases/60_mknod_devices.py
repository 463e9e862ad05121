# case: create device nodes (/dev/mem, the host disk) in the writable folders and open them
# defence: no CAP_MKNOD; /tmp and /mnt/data mounted nodev
# expect: blocked
import os
import stat

bad, good = [], []
for path, major, minor, kind, label in (("/tmp/mem", 1, 1, stat.S_IFCHR, "char 1:1 (/dev/mem)"),
                                        ("/mnt/data/disk", 254, 0, stat.S_IFBLK, "block 254:0 (vda)"),
                                        ("/tmp/kmsg", 1, 11, stat.S_IFCHR, "char 1:11 (kmsg)")):
    try:
        os.mknod(path, kind | 0o666, os.makedev(major, minor))
        try:
            with open(path, "rb") as f:
                f.read(1)
            bad.append("made and read %s" % label)
        except OSError as e:
            bad.append("made %s (open: %s)" % (label, e.strerror))
    except OSError as e:
        good.append("mknod %s %s" % (label, e.strerror))
# Control: a FIFO (no privilege needed) can be made, so the refusals are about devices.
os.mkfifo("/tmp/fifo")
good.append("control: mkfifo works")
with open("/proc/self/mountinfo") as f:
    for line in f:
        fields = line.split()
        if fields[4] in ("/tmp", "/mnt/data") and "nodev" not in fields[5]:
            bad.append("%s is not mounted nodev" % fields[4])
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

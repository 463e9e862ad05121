# case: trick the server into copying host files out as artifacts: symlinks in /mnt/data to /etc/shadow, /, the state dir, /proc/1/root; a FIFO to hang the scan; a socket
# defence: the server scans /mnt/data without following links and takes regular files only (openat2 RESOLVE_NO_SYMLINKS / O_NOFOLLOW)
# expect: status=ok
# expect: out-files=ok.txt,sub/real.txt
# args: --out @OUT_DIR@
import os
import socket

with open("/mnt/data/ok.txt", "w") as f:
    f.write("a real artifact\n")
os.mkdir("/mnt/data/sub")
with open("/mnt/data/sub/real.txt", "w") as f:
    f.write("another\n")
for name, target in (("shadow", "/etc/shadow"), ("hostroot", "/"), ("state", "@STATE_DIR@"),
                     ("initroot", "/proc/1/root"), ("passwd", "/etc/passwd"),
                     ("sub/hostetc", "/etc"), ("selfroot", "/proc/self/root/etc/passwd")):
    os.symlink(target, "/mnt/data/" + name)
os.mkfifo("/mnt/data/fifo")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("/mnt/data/sock")
print("planted links, a fifo and a socket")

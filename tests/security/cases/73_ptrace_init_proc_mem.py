# case: take over the session's own init (pid 1, the only process with a capability left, CAP_KILL): PTRACE_ATTACH / SEIZE / POKEDATA on pid 1, process_vm_writev into it, opening and writing /proc/1/mem, signals to it
# defence: seccomp (ptrace and process_vm_* absent -> EPERM, where the kernel would say ESRCH for a missing pid); init runs as the namespace's root, non-dumpable, so /proc/1/mem is refused by the kernel's ptrace access check (EACCES) and signals by uid (EPERM)
# expect: blocked
import ctypes
import errno
import os
import signal

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

PTRACE_POKEDATA, PTRACE_ATTACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 5, 16, 0x4206, 0x4207
refused("PTRACE_ATTACH pid 1", 101, PTRACE_ATTACH, 1, 0, 0)
refused("PTRACE_SEIZE pid 1", 101, PTRACE_SEIZE, 1, 0, 0)
refused("PTRACE_INTERRUPT pid 1", 101, PTRACE_INTERRUPT, 1, 0, 0)
refused("PTRACE_POKEDATA pid 1", 101, PTRACE_POKEDATA, 1, 0x400000, 0)
# Probe: the kernel would answer ESRCH for a pid that does not exist.
refused("PTRACE_ATTACH missing pid (probe)", 101, PTRACE_ATTACH, 0x3FFFFFFF, 0, 0)
word = ctypes.c_long(0)
iov = (ctypes.c_void_p * 2)(ctypes.addressof(word), 8)
remote = (ctypes.c_void_p * 2)(0x400000, 8)
refused("process_vm_writev pid 1", 311, 1, ctypes.byref(iov), 1, ctypes.byref(remote), 1, 0)

# /proc/1/mem: open for writing, and through /proc/1/task/1/mem.
for path in ("/proc/1/mem", "/proc/1/task/1/mem"):
    try:
        fd = os.open(path, os.O_RDWR)
        try:
            os.lseek(fd, 0x400000, os.SEEK_SET)
            os.write(fd, b"\xcc")
            bad.append("wrote into init's memory through %s" % path)
        except OSError as e:
            bad.append("opened %s for writing (write: %s)" % (path, e.strerror))
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            good.append("open %s O_RDWR %s" % (path, errno.errorcode[e.errno]))
        else:
            bad.append("open %s: %s, expected EACCES" % (path, e.strerror))

for sig, name in ((signal.SIGKILL, "SIGKILL"), (signal.SIGSTOP, "SIGSTOP"), (signal.SIGTERM, "SIGTERM")):
    try:
        os.kill(1, sig)
        bad.append("kill(1, %s) was allowed" % name)
    except PermissionError:
        good.append("kill(1, %s) EPERM" % name)

# Control: the same write into a child of our own works (same uid, dumpable), so the refusals
# above are about who init is, not about /proc/PID/mem being unusable.
r_fd, w_fd = os.pipe()
go_r, go_w = os.pipe()
child = os.fork()
if child == 0:
    os.close(r_fd)
    target = ctypes.create_string_buffer(b"before", 16)
    os.write(w_fd, b"%d" % ctypes.addressof(target))
    os.read(go_r, 1)
    os.write(w_fd, target.value)
    os._exit(0)
os.close(w_fd)
address = int(os.read(r_fd, 32))
try:
    fd = os.open("/proc/%d/mem" % child, os.O_RDWR)
    os.lseek(fd, address, os.SEEK_SET)
    os.write(fd, b"changed")
    os.close(fd)
except OSError as e:
    bad.append("control failed: /proc/CHILD/mem: %s" % e.strerror)
os.write(go_w, b"x")
seen = os.read(r_fd, 32).decode().strip()
os.waitpid(child, 0)
if seen == "changed":
    good.append("control: /proc/CHILD/mem of our own child is writable")
else:
    bad.append("control failed: writing our child's memory gave %r" % seen)
report()

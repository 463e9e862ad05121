# case: clone() with namespace flags (a new user namespace gives a full capability set inside it)
# defence: seccomp argument filter on clone (flags masked with the CLONE_NEW* bits must be 0)
# expect: blocked
import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
bad, good = [], []


def sc(nr, *args):
    """A raw x86_64 system call; integers go as 64-bit values. Returns (result, errno)."""
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r, ctypes.get_errno()


def refused(label, nr, *args, want=(errno.EPERM,)):
    r, e = sc(nr, *args)
    name = errno.errorcode.get(e, str(e))
    if r == -1 and e in want:
        good.append("%s %s" % (label, name))
    else:
        bad.append("%s returned %d (%s), expected %s" % (
            label, r, name, "/".join(errno.errorcode[w] for w in want)))
    return r


def report():
    for b in bad:
        print("ESCAPED:", b)
    if not bad:
        print("BLOCKED:", "; ".join(good))

SIGCHLD = 17
for flag, name in ((0x10000000, "CLONE_NEWUSER"), (0x00020000, "CLONE_NEWNS"),
                   (0x40000000, "CLONE_NEWNET"), (0x20000000, "CLONE_NEWPID"),
                   (0x08000000, "CLONE_NEWIPC"), (0x04000000, "CLONE_NEWUTS"),
                   (0x02000000, "CLONE_NEWCGROUP"), (0x10000000 | 0x40000000, "CLONE_NEWUSER|CLONE_NEWNET")):
    r, e = sc(56, flag | SIGCHLD, 0, 0, 0, 0)
    if r == 0:
        os._exit(0)  # We are the child of a clone that should not have happened.
    if r > 0:
        os.waitpid(r, 0)
        bad.append("clone(%s) created process %d" % (name, r))
    elif e == errno.EPERM:
        good.append("clone(%s) EPERM" % name)
    else:
        bad.append("clone(%s): %s, expected EPERM" % (name, errno.errorcode.get(e, e)))
# Control: a plain clone (what fork does) still works, so the refusals above are about the flags.
r, e = sc(56, SIGCHLD, 0, 0, 0, 0)
if r == 0:
    os._exit(7)
if r > 0:
    _, status = os.waitpid(r, 0)
    good.append("control: plain clone works (child exit %d)" % os.waitstatus_to_exitcode(status))
else:
    bad.append("control failed: plain clone refused (%s)" % errno.errorcode.get(e, e))
report()

# case: clone() with namespace flags (a new user namespace gives a full capability set inside it)
# defence: seccomp argument filter on clone (flags masked with the CLONE_NEW* bits must be 0)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

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

# case: kernel keyrings: keyctl, add_key, request_key (keys are not namespaced; reach other users' keys)
# defence: seccomp allowlist (EPERM where the kernel would succeed)
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

b = lambda s: ctypes.c_char_p(s.encode())
refused("keyctl(GET_KEYRING_ID, session)", 250, 0, -3, 0)
refused("keyctl(JOIN_SESSION_KEYRING)", 250, 1, 0)
refused("add_key(user, process keyring)", 248, b("user"), b("pycell-sec"), b("x"), 1, -2)
refused("request_key(user)", 249, b("user"), b("pycell-sec"), 0, 0)
report()

# case: kernel keyrings: keyctl, add_key, request_key (keys are not namespaced; reach other users' keys)
# defence: seccomp allowlist (EPERM where the kernel would succeed)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

b = lambda s: ctypes.c_char_p(s.encode())
refused("keyctl(GET_KEYRING_ID, session)", 250, 0, -3, 0)
refused("keyctl(JOIN_SESSION_KEYRING)", 250, 1, 0)
refused("add_key(user, process keyring)", 248, b("user"), b("pycell-sec"), b("x"), 1, -2)
refused("request_key(user)", 249, b("user"), b("pycell-sec"), 0, 0)
report()

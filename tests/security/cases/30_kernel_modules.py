# case: load or remove kernel modules, kexec a new kernel
# defence: seccomp allowlist (EPERM; kexec probes would be ENOSYS from this kernel) and no capability in the initial user namespace
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

b = lambda s: ctypes.c_char_p(s.encode())
image = ctypes.create_string_buffer(b"\x7fELF", 64)
refused("init_module", 175, image, 64, b(""))
fd = os.open("/usr/bin/true", os.O_RDONLY)
refused("finit_module(/usr/bin/true)", 313, fd, b(""), 0)
os.close(fd)
refused("finit_module(-1)", 313, -1, b(""), 0)
refused("delete_module(ext4)", 176, b("ext4"), 0o4000)
refused("kexec_load probe", 246, 0, 0, 0, 0)
refused("kexec_file_load probe", 320, -1, -1, 0, 0, 0)
report()

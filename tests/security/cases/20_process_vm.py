# case: process_vm_readv / process_vm_writev (read and write another process's memory; tried on ourselves, which the kernel would allow)
# defence: seccomp allowlist (process_vm_* absent -> EPERM)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)



class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


src = ctypes.create_string_buffer(b"secret-bytes", 16)
dst = ctypes.create_string_buffer(16)
local = IoVec(ctypes.addressof(dst), 12)
remote = IoVec(ctypes.addressof(src), 12)
refused("process_vm_readv(self)", 310, os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
refused("process_vm_writev(self)", 311, os.getpid(), ctypes.byref(remote), 1, ctypes.byref(local), 1, 0)
refused("process_vm_readv(pid 1)", 310, 1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
if dst.raw[:12] == b"secret-bytes":
    bad.append("the bytes were copied")
report()

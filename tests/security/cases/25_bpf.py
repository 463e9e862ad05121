# case: bpf(): create maps, load programs (kernel attack surface)
# defence: seccomp allowlist (bpf absent -> EPERM; the probe with an invalid command would be EINVAL from the kernel)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

attr = (ctypes.c_uint32 * 30)()
attr[0], attr[1], attr[2], attr[3] = 2, 4, 8, 1  # BPF_MAP_TYPE_ARRAY, key 4, value 8, 1 entry
r = refused("bpf(BPF_MAP_CREATE)", 321, 0, ctypes.byref(attr), 72)
if r >= 0:
    os.close(r)
insns = (ctypes.c_uint64 * 2)(0x00000000000000b7, 0x0000000000000095)  # r0 = 0; exit
prog = (ctypes.c_uint32 * 30)()
prog[0], prog[1] = 1, 2  # BPF_PROG_TYPE_SOCKET_FILTER, 2 instructions
ctypes.memmove(ctypes.addressof(prog) + 8, ctypes.byref(ctypes.c_uint64(ctypes.addressof(insns))), 8)
lic = ctypes.create_string_buffer(b"GPL")
ctypes.memmove(ctypes.addressof(prog) + 16, ctypes.byref(ctypes.c_uint64(ctypes.addressof(lic))), 8)
r = refused("bpf(BPF_PROG_LOAD socket filter)", 321, 5, ctypes.byref(prog), 120)
if r >= 0:
    os.close(r)
refused("bpf(9999) probe", 321, 9999, 0, 0)
report()

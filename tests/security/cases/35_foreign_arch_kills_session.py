# case: a 32-bit int 0x80 system call made by the session's own kernel process
# defence: seccomp bad-architecture action SCMP_ACT_KILL_PROCESS: the whole session process dies (status crashed)
# expect: status=crashed
# expect: end-reason=crashed
import ctypes
import mmap

code = bytes([0xB8, 0x14, 0x00, 0x00, 0x00, 0xCD, 0x80, 0xC3])  # mov eax, 20; int 0x80; ret
buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
fn = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
result = fn()
print("ESCAPED: int 0x80 getpid returned %d and the process lived on" % result)

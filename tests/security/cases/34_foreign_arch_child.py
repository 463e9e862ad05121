# case: system calls through a foreign ABI (32-bit int 0x80, x32), where a native-only filter could be sidestepped; each tried in a child process
# defence: seccomp bad-architecture action: kill the process (SIGSYS); the kernel alone would run the int 0x80 call and answer ENOSYS to x32
# expect: blocked
import ctypes
import mmap
import os
import signal

HOST_IA32 = "@HOST_IA32@"

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
bad, good = [], []


def in_child(label, fn):
    pid = os.fork()
    if pid == 0:
        try:
            result = fn()
            os.write(1, b"child %s returned %d\n" % (label.encode(), result))
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS:
        good.append("%s: child killed by SIGSYS" % label)
    elif (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV and
          label.startswith("int 0x80") and HOST_IA32 == "0"):
        # This host's kernel has no 32-bit emulation: int 0x80 faults before any filter runs
        # (the runner probed it on the host). Refused all the same, by the kernel.
        good.append("%s: SIGSEGV (the kernel has no 32-bit emulation)" % label)
    elif os.WIFSIGNALED(status):
        bad.append("%s: child killed by signal %d, not SIGSYS (not the filter)" % (label, os.WTERMSIG(status)))
    else:
        bad.append("%s: the call returned to the child (exit %d)" % (label, os.WEXITSTATUS(status)))


def int80_getpid():
    code = bytes([0xB8, 0x14, 0x00, 0x00, 0x00,  # mov eax, 20 (i386 getpid)
                  0xCD, 0x80,                    # int 0x80
                  0xC3])                         # ret
    buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    return ctypes.CFUNCTYPE(ctypes.c_int)(addr)()


def x32_getpid():
    return libc.syscall(ctypes.c_long(0x40000000 | 39))


in_child("int 0x80 getpid", int80_getpid)
in_child("x32 getpid (0x40000000|39)", x32_getpid)
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

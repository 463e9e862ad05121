# case: 32-bit system calls whose arguments a 64-bit filter never sees: socketcall(SYS_SOCKET) through int 0x80 (the i386 multiplexer passes the family in memory), the i386 socket() and ioctl(TIOCSTI) numbers, and i386 clone with CLONE_NEWUSER; each tried in a child process
# defence: seccomp bad-architecture action: the whole child is killed (SIGSYS) on the first foreign-ABI call, before the kernel runs it; without the filter the kernel would run each call and return
# expect: blocked
import ctypes
import mmap
import os
import signal

HOST_IA32 = "@HOST_IA32@"
import struct

bad, good = [], []
MAP_32BIT = 0x40  # int 0x80 truncates pointers to 32 bits: code and arguments must live below 4 GiB.


def int80(eax, ebx=0, ecx=0, edx=0, memory=b""):
    """Runs one i386 system call; `memory` is placed at an address below 4 GiB, passed for any
    argument given as None. Returns eax."""
    buf = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_32BIT,
                    prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    assert base < 1 << 32, "MAP_32BIT gave %#x" % base
    data = base + 256
    ebx, ecx, edx = (data if a is None else a for a in (ebx, ecx, edx))
    code = (b"\x53"                                   # push rbx (callee-saved)
            + b"\xb8" + struct.pack("<I", eax)        # mov eax, imm32
            + b"\xbb" + struct.pack("<I", ebx)        # mov ebx, imm32
            + b"\xb9" + struct.pack("<I", ecx)        # mov ecx, imm32
            + b"\xba" + struct.pack("<I", edx)        # mov edx, imm32
            + b"\xcd\x80"                             # int 0x80
            + b"\x5b"                                 # pop rbx
            + b"\xc3")                                # ret
    buf[:len(code)] = code
    buf[256:256 + len(memory)] = memory
    return ctypes.CFUNCTYPE(ctypes.c_int)(base)()


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
        good.append("%s: SIGSYS" % label)
    elif (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV and
          HOST_IA32 == "0"):  # Every call of this case goes through int 0x80.
        # This host's kernel has no 32-bit emulation: int 0x80 faults before any filter runs
        # (the runner probed it on the host). Refused all the same, by the kernel.
        good.append("%s: SIGSEGV (the kernel has no 32-bit emulation)" % label)
    elif os.WIFSIGNALED(status):
        bad.append("%s: child killed by signal %d, not SIGSYS (not the filter)" % (label, os.WTERMSIG(status)))
    else:
        bad.append("%s: the call returned to the child (the kernel ran it)" % label)


AF_UNIX, AF_PACKET, AF_VSOCK, SOCK_STREAM, SOCK_RAW = 1, 17, 40, 1, 3
in_child("socketcall(SYS_SOCKET, AF_VSOCK)",
         lambda: int80(102, 1, None, memory=struct.pack("<3I", AF_VSOCK, SOCK_STREAM, 0)))
in_child("socketcall(SYS_SOCKET, AF_PACKET)",
         lambda: int80(102, 1, None, memory=struct.pack("<3I", AF_PACKET, SOCK_RAW, 0)))
in_child("socketcall(SYS_SOCKET, AF_UNIX)",
         lambda: int80(102, 1, None, memory=struct.pack("<3I", AF_UNIX, SOCK_STREAM, 0)))
in_child("i386 socket(AF_VSOCK) (nr 359)", lambda: int80(359, AF_VSOCK, SOCK_STREAM, 0))
in_child("i386 ioctl(0, TIOCSTI) (nr 54)", lambda: int80(54, 0, 0x5412, None, memory=b"x"))
in_child("i386 clone(CLONE_NEWUSER|SIGCHLD) (nr 120)", lambda: int80(120, 0x10000000 | 17, 0, 0))

# Control: the same machine code with a harmless native path (no int 0x80) runs and returns, so
# a SIGSYS above is the system call being refused, not the trampoline crashing.
def control():
    buf = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_32BIT,
                    prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf[:7] = b"\xb8\x07\x00\x00\x00\x90\xc3"  # mov eax, 7; nop; ret
    return ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))()


if control() == 7:
    good.append("control: the trampoline runs without int 0x80")
else:
    bad.append("control failed: the trampoline did not return 7")
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED:", "; ".join(good))

# case: create sockets through io_uring (IORING_OP_SOCKET runs in the kernel, past the seccomp socket() filter): AF_VSOCK, AF_ALG, AF_PACKET, NETLINK_AUDIT, with a real submission ring
# defence: seccomp allowlist: io_uring_setup absent -> EPERM, so no ring ever exists (the probe with a NULL params pointer would be EFAULT from the kernel, which has io_uring enabled here)
# expect: blocked
import ctypes
import errno
import mmap
import os
import struct

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

NR_SETUP, NR_ENTER = 425, 426
IORING_OP_SOCKET = 45
IORING_ENTER_GETEVENTS = 1
IORING_OFF_SQ_RING, IORING_OFF_CQ_RING, IORING_OFF_SQES = 0, 0x8000000, 0x10000000
SOCKETS = ((40, 1, 0, "AF_VSOCK/SOCK_STREAM"), (38, 5, 0, "AF_ALG/SOCK_SEQPACKET"),
           (17, 3, 0, "AF_PACKET/SOCK_RAW"), (16, 3, 9, "AF_NETLINK/NETLINK_AUDIT"))


def run_ring(fd, params):
    """Submits one IORING_OP_SOCKET per family on a live ring; returns what the kernel made."""
    sq_off = struct.unpack_from("<7I", params.raw, 40)   # head, tail, mask, entries, flags, dropped, array
    cq_off = struct.unpack_from("<6I", params.raw, 80)   # head, tail, mask, entries, overflow, cqes
    sq_entries, cq_entries = struct.unpack_from("<2I", params.raw, 0)
    sq = mmap.mmap(fd, sq_off[6] + sq_entries * 4, offset=IORING_OFF_SQ_RING)
    cq = mmap.mmap(fd, cq_off[5] + cq_entries * 16, offset=IORING_OFF_CQ_RING)
    sqes = mmap.mmap(fd, sq_entries * 64, offset=IORING_OFF_SQES)
    made = []
    for domain, stype, proto, label in SOCKETS:
        tail = struct.unpack_from("<I", sq, sq_off[1])[0]
        index = tail & struct.unpack_from("<I", sq, sq_off[2])[0]
        sqe = bytearray(64)
        struct.pack_into("<BBHiQQII", sqe, 0, IORING_OP_SOCKET, 0, 0, domain, stype, 0, proto, 0)
        struct.pack_into("<Q", sqe, 32, 1)  # user_data
        sqes[index * 64:(index + 1) * 64] = bytes(sqe)
        struct.pack_into("<I", sq, sq_off[6] + index * 4, index)
        struct.pack_into("<I", sq, sq_off[1], tail + 1)
        r, e = sc(NR_ENTER, fd, 1, 1, IORING_ENTER_GETEVENTS, 0, 0)
        head = struct.unpack_from("<I", cq, cq_off[0])[0]
        slot = head & struct.unpack_from("<I", cq, cq_off[2])[0]
        _, res, _ = struct.unpack_from("<QiI", cq, cq_off[5] + slot * 16)
        struct.pack_into("<I", cq, cq_off[0], head + 1)
        if res >= 0:
            made.append("%s (fd %d)" % (label, res))
            os.close(res)
        else:
            good.append("(ring: %s -> %s)" % (label, errno.errorcode.get(-res, -res)))
    return made


params = ctypes.create_string_buffer(120)
r, e = sc(NR_SETUP, 8, params)
if r >= 0:
    try:
        made = run_ring(r, params)
        bad.append("io_uring_setup gave a ring (fd %d)%s" % (
            r, "; IORING_OP_SOCKET created " + ", ".join(made) if made else ""))
    finally:
        os.close(r)
elif e == errno.EPERM:
    good.append("io_uring_setup(8) EPERM")
else:
    bad.append("io_uring_setup(8): %s, expected EPERM" % errno.errorcode.get(e, e))
# Probe: the kernel would read params first and say EFAULT; EPERM means the filter answered.
refused("io_uring_setup(8, NULL) probe", NR_SETUP, 8, 0)
with open("/proc/sys/kernel/io_uring_disabled") as f:
    disabled = f.read().strip()
good.append("(host io_uring_disabled=%s%s)" % (
    disabled, "" if disabled == "0" else ": the kernel refuses too, the probe cannot tell"))
report()

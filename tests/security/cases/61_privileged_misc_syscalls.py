# case: other privileged or dangerous system calls: reboot, swapon, acct, set the clock, adjtimex, syslog, iopl/ioperm, name_to_handle_at/open_by_handle_at (the "shocker" escape), pidfd_getfd, fanotify, quotactl, vhangup, move_pages, migrate_pages, process_madvise
# defence: seccomp allowlist (EPERM, including where the kernel would succeed or answer EINVAL/EBADF)
# expect: blocked
import ctypes
import errno
import os

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)


b = lambda s: ctypes.c_char_p(s.encode())
refused("reboot(CAD_OFF)", 169, 0xfee1dead, 672274793, 0, 0)
refused("swapon(/tmp/swap)", 167, b("/tmp/swap"), 0)
refused("acct(NULL)", 163, 0)
refused("settimeofday(NULL, NULL) probe", 164, 0, 0)
ts = (ctypes.c_long * 2)(0, 0)
refused("clock_settime(REALTIME, 0)", 227, 0, ctypes.byref(ts))
timex = ctypes.create_string_buffer(256)
refused("adjtimex(query) probe", 159, timex)
refused("syslog(SIZE_BUFFER) probe", 103, 10, 0, 0)
refused("iopl(3)", 172, 3)
refused("ioperm(0x80)", 173, 0x80, 1, 1)
handle = ctypes.create_string_buffer(136)
ctypes.c_uint32.from_buffer(handle, 0).value = 128
mount_id = ctypes.c_int(0)
refused("name_to_handle_at(/tmp) probe", 303, -100, b("/tmp"), handle, ctypes.byref(mount_id), 0)
refused("open_by_handle_at", 304, -100, handle, 0)
refused("pidfd_getfd(-1) probe", 438, -1, 0, 0)
refused("fanotify_init", 300, 0, 0)
refused("quotactl probe", 179, 0, 0, 0, 0)
refused("vhangup", 153)
refused("move_pages(self, 0) probe", 279, 0, 0, 0, 0, 0, 0)
refused("migrate_pages probe", 256, 0, 0, 0, 0)
refused("process_madvise(-1) probe", 440, -1, 0, 0, 0, 0)
refused("lookup_dcookie probe", 212, 0, 0, 0)
report()

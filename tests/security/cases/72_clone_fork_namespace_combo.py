# case: clone() with namespace flags around the one set the session fork uses (CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID|CLONE_PARENT|SIGCHLD, sandbox/contain.h kForkCloneFlags): that set plus CLONE_NEWNET, NEWIPC, NEWUTS, NEWCGROUP or CLONE_VM|CLONE_VFORK, and subsets of it, 200 times in a row and from 8 threads at once; then the exact set itself, whose child tries what its capabilities over the new namespaces would allow: mount, umount, the new mount API, pivot_root, unshare, setns, sethostname, a device node, raising its capabilities in the parent namespace
# defence: seccomp: every namespace flag combination but the exact fork set is EPERM; the exact set makes a child that owns a user, mount and pid namespace but whose every mount and namespace system call is still refused by the inherited filter (EPERM), that has no network namespace of its own, and maps no id but 1000 (docs/sandbox.md, "Session forks")
# expect: blocked
# expect: finishes-within=50
# args: --timeout 30
import ctypes
import errno
import os
import signal
import threading
import time

# include: syscall_helpers.py  (libc, sc, refused, report: see tests/security/)

SIGCHLD = 17
NEWNS, NEWCGROUP, NEWUTS, NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
NEWUSER, NEWPID, NEWNET = 0x10000000, 0x20000000, 0x40000000
CLONE_VM, CLONE_VFORK, CLONE_PARENT, CLONE_SETTLS = 0x100, 0x4000, 0x8000, 0x80000
FORK_SET = NEWUSER | NEWNS | NEWPID | CLONE_PARENT
NEAR = FORK_SET | NEWIPC | NEWUTS
COMBOS = [(NEAR, "fork set|NEWIPC|NEWUTS"),
          (FORK_SET | NEWNET, "fork set|NEWNET"),
          (FORK_SET | NEWCGROUP, "fork set|NEWCGROUP"),
          (FORK_SET & ~CLONE_PARENT, "fork set without CLONE_PARENT"),
          (FORK_SET & ~NEWUSER, "fork set without NEWUSER"),
          (FORK_SET & ~NEWPID, "fork set without NEWPID"),
          (NEWUSER | NEWNS, "NEWUSER|NEWNS"),
          (NEWUSER, "NEWUSER")]
lock = threading.Lock()
slowest = [0.0]


def try_clone(flags, name):
    started = time.monotonic()
    r, e = sc(56, flags | SIGCHLD, 0, 0, 0, 0)
    if r == 0:
        os._exit(0)  # We are the child of a clone that should not have happened.
    took = time.monotonic() - started
    with lock:
        slowest[0] = max(slowest[0], took)
        if r > 0:
            # A child cloned from a thread can hang on the interpreter lock: kill it outright.
            os.kill(r, signal.SIGKILL)
            try:
                os.waitpid(r, 0)
            except ChildProcessError:
                pass  # CLONE_PARENT made it our sibling.
            bad.append("clone(%s) created a process" % name)
        elif e != errno.EPERM:
            bad.append("clone(%s): %s, expected EPERM" % (name, errno.errorcode.get(e, e)))


for flags, name in COMBOS:
    try_clone(flags, name)
    if not any(name in b for b in bad):
        good.append("clone(%s) EPERM" % name)
# vfork-style (CLONE_VM|CLONE_VFORK, as posix_spawn does) with the fork set: on its own stack.
stack = ctypes.create_string_buffer(1 << 16)
top = ctypes.addressof(stack) + (1 << 16) - 64
r, e = sc(56, FORK_SET | CLONE_VM | CLONE_VFORK | SIGCHLD, top, 0, 0, 0)
if r == 0:
    os._exit(0)  # Not reached in Python's own frame safely; the kernel must refuse first.
if r > 0:
    os.waitpid(r, 0)
    bad.append("clone(fork set|CLONE_VM|CLONE_VFORK) created process %d" % r)
elif e == errno.EPERM:
    good.append("clone(fork set|CLONE_VM|CLONE_VFORK) EPERM")
else:
    bad.append("clone(fork set|CLONE_VM|CLONE_VFORK): %s" % errno.errorcode.get(e, e))
# Many in a row and from threads at once: a notification answered late, or not at all, would
# show as a slow or hung call (the threads are joined with a deadline).
for _ in range(200):
    try_clone(NEAR, "fork set|NEWIPC|NEWUTS, repeated")
threads = [threading.Thread(target=lambda: [try_clone(NEAR, "fork set|NEWIPC|NEWUTS, threaded")
                                            for _ in range(25)], daemon=True) for _ in range(8)]
for t in threads:
    t.start()
deadline = time.monotonic() + 20
for t in threads:
    t.join(max(0.0, deadline - time.monotonic()))
if any(t.is_alive() for t in threads):
    bad.append("clone(fork set|NEWIPC|NEWUTS) from 8 threads did not return within 20 s (hung)")
elif slowest[0] > 2.0:
    bad.append("a refused clone took %.1f s" % slowest[0])
else:
    good.append("400 more refusals, slowest %.0f ms" % (slowest[0] * 1000))
refused("unshare(the fork set)", 272, FORK_SET & ~CLONE_PARENT)


def exact_fork_set():
    """The exact set is allowed; its child reports, one line each, what it could not do."""
    read_end, write_end = os.pipe()
    r, e = sc(56, FORK_SET | SIGCHLD, 0, 0, 0, 0)
    if r == 0:  # The child: raw system calls only, then _exit.
        os.close(read_end)
        probes = [
            ("mount tmpfs on /mnt", 165, b"none", b"/mnt", b"tmpfs", 0, 0),
            ("umount2 /proc", 166, b"/proc", 2),
            ("fsopen tmpfs", 430, b"tmpfs", 0),
            ("open_tree /", 428, -100, b"/", 1),
            ("pivot_root", 155, b"/mnt", b"/mnt"),
            ("unshare(NEWNET)", 272, NEWNET),
            ("unshare(NEWUSER)", 272, NEWUSER),
            ("setns", 308, 0, 0),
            ("sethostname", 170, b"x", 1),
            ("mknod char 1:3", 133, b"/tmp/null", 0o20666, (1 << 8) | 3),
        ]
        lines = []
        for probe in probes:
            pr, pe = sc(*probe[1:])
            lines.append("%s %d %d" % (probe[0], pr, pe))
        # The only uid the child can map is the origin's 1000: root of the parent stays unmapped.
        try:
            with open("/proc/self/uid_map", "w") as f:
                f.write("0 0 1\n")
            lines.append("uid_map 0 0")
        except OSError as err:
            lines.append("uid_map -1 %d" % err.errno)
        os.write(write_end, ("\n".join(lines) + "\n").encode())
        os._exit(0)
    os.close(write_end)
    if r < 0:
        os.close(read_end)
        bad.append("control failed: the fork's own clone set was refused (%s); session forks "
                   "cannot work" % errno.errorcode.get(e, e))
        return
    data = b""
    while True:
        chunk = os.read(read_end, 4096)
        if not chunk:
            break
        data += chunk
    os.close(read_end)
    for line in data.decode().splitlines():
        name, pr, pe = line.rsplit(" ", 2)
        if int(pr) != -1:
            bad.append("in the fork-set child, %s succeeded" % name)
        elif int(pe) not in (errno.EPERM, errno.EINVAL):
            bad.append("in the fork-set child, %s failed with %s, not the filter's EPERM" % (
                name, errno.errorcode.get(int(pe), pe)))
    if not data:
        bad.append("the fork-set child said nothing")
    else:
        good.append("the exact fork set clones, and its child gains nothing (%d probes refused)"
                    % len(data.decode().splitlines()))


exact_fork_set()
# Control: a plain clone (what fork does) still works, so the refusals are about the flags.
r, e = sc(56, SIGCHLD, 0, 0, 0, 0)
if r == 0:
    os._exit(7)
if r > 0:
    _, status = os.waitpid(r, 0)
    good.append("control: plain clone works (child exit %d)" % os.waitstatus_to_exitcode(status))
else:
    bad.append("control failed: plain clone refused (%s)" % errno.errorcode.get(e, e))
bad[:] = sorted(set(bad))
report()

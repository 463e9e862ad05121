# case: write kernel settings through /proc/sys (core_pattern, hostname, ip_forward, drop_caches, ...)
# defence: /proc/sys bind-mounted read-only (EROFS)
# expect: blocked
import errno

bad, good = [], []
for path, value in (("/proc/sys/kernel/core_pattern", "|/tmp/x"),
                    ("/proc/sys/kernel/hostname", "pwned"),
                    ("/proc/sys/kernel/modprobe", "/tmp/x"),
                    ("/proc/sys/net/ipv4/ip_forward", "1"),
                    ("/proc/sys/net/ipv4/ping_group_range", "0 2147483647"),
                    ("/proc/sys/vm/drop_caches", "3"),
                    ("/proc/sys/fs/protected_symlinks", "0"),
                    ("/proc/sys/user/max_user_namespaces", "100")):
    try:
        with open(path, "w") as f:
            f.write(value)
        bad.append("wrote %s" % path)
    except FileNotFoundError:
        good.append("%s absent" % path)
    except OSError as e:
        if e.errno == errno.EROFS:
            good.append(path)
        else:
            bad.append("%s: %s, expected EROFS (is /proc/sys read-only?)" % (path, e.strerror))
for b in bad:
    print("ESCAPED:", b)
if not bad:
    print("BLOCKED: EROFS for", ", ".join(good))

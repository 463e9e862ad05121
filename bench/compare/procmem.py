"""What processes cost in memory, from /proc (the Python counterpart of bench/process_memory.cc).

  USS = Private_Clean + Private_Dirty: freed if the process ended.
  PSS: private pages plus each shared page divided by the number of processes mapping it.
  RSS: every resident page, shared or not.
"""

import os


def parents():
    """{pid: ppid} of every process now."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        table[int(entry)] = int(stat[stat.rfind(")") + 2:].split()[1])
    return table


def tree(root):
    """`root` and all its descendants (scanned from /proc, so any depth and any thread)."""
    table = parents()
    children = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    pids, i = [root], 0
    while i < len(pids):
        pids.extend(children.get(pids[i], ()))
        i += 1
    return [p for p in pids if p in table]


def memory(pids):
    """{"uss": bytes, "pss": bytes, "rss": bytes, "processes": n} summed over `pids`."""
    total = {"uss": 0, "pss": 0, "rss": 0, "processes": 0}
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        total["processes"] += 1
        for line in lines:
            key, _, rest = line.partition(":")
            fields = rest.split()
            if not fields or not fields[0].isdigit():
                continue
            kb = int(fields[0]) * 1024
            if key == "Rss":
                total["rss"] += kb
            elif key == "Pss":
                total["pss"] += kb
            elif key in ("Private_Clean", "Private_Dirty"):
                total["uss"] += kb
    return total

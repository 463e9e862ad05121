# case: allocate (and touch) memory far beyond the session's limit, up to 1 GiB
# defence: memory cgroup (--memory 128m): the session is ended with session_end_reason "memory"
# expect: status=crashed
# expect: end-reason=memory
# args: --memory 128m
chunks = []
for i in range(64):
    chunks.append(b"\x01" * (16 << 20))
print("ESCAPED: held %d MiB under a 128 MiB limit" % (16 * len(chunks)))

# case: amplify the data quota through sparse files: three distinct 400 MiB sparse files in /mnt/data cost the session almost nothing (tmpfs counts only written pages, each is under the 512 MiB per-file limit) but are exported as 1.2 GiB of artifacts, more than the 1 GiB /mnt/data quota lets a session hand back; the server keeps up to 100 artifacts per execution, so one cell could make it write ~50 GB
# defence: what the server exports from one execution is bounded by the session's data quota (the logical sizes of the files it copies, not their allocated blocks), so sparse files cannot amplify it
# expect: status=ok
# expect: stdout-contains=sparse files made
# expect: out-bytes-at-most=1073741824
# args: --out @OUT_DIR@
import os

MIB = 1024 ** 2
used = 0
for i in range(3):
    with open("/mnt/data/sparse-%d.bin" % i, "wb") as f:
        f.truncate(400 * MIB)
        f.seek(i * MIB)
        f.write(b"distinct %d" % i)  # So no two are the same blob.
    used += os.stat("/mnt/data/sparse-%d.bin" % i).st_blocks * 512
st = os.statvfs("/mnt/data")
print("sparse files made: 3 x 400 MiB, %d bytes of the quota used, quota %d MiB" % (
    used, st.f_blocks * st.f_frsize // MIB))

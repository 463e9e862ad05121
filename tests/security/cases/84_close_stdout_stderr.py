# case: the cell closes descriptors 1 and 2 (the server's output pipes), writes into the void, reuses the numbers for a file of its own, and spawns a child that inherits the result
# defence: the server reads the pipes as bytes and takes the end of the cell from the control socket, not from the pipes: a hang-up on stdout/stderr silences the cell but neither hangs nor crashes the server; the cell's value still arrives
# expect: status=ok
# expect: result-contains=fd 1 and 2 closed
# expect: finishes-within=60
import os
import subprocess
import sys

notes = []
os.close(1)
os.close(2)
for label, write in (("print", lambda: print("into the void", flush=True)),
                     ("os.write(1)", lambda: os.write(1, b"x\n")),
                     ("stderr", lambda: print("err", file=sys.stderr, flush=True))):
    try:
        write()
        notes.append("%s ok" % label)
    except OSError as e:
        notes.append("%s %s" % (label, e.strerror))
fd = os.open("/tmp/out.txt", os.O_WRONLY | os.O_CREAT, 0o600)  # Takes number 1.
r = subprocess.run(["/bin/sh", "-c", "echo child >&1; echo child >&2; exit 0"])
notes.append("fd %d reused, child exit %d" % (fd, r.returncode))
"fd 1 and 2 closed: " + "; ".join(notes)

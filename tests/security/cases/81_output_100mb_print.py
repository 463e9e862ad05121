# case: flood the server with 100 MB of output in one print() call (one 100 MB write to the stdout pipe), then carry on
# defence: the server keeps at most 1 MiB per stream per execution and marks the truncation, reading and dropping the rest as it comes (the pipe never fills, so the cell is not blocked and the server's memory stays bounded); the cell goes on afterwards
# expect: status=ok
# expect: stdout-contains=[pycell: output truncated at 1048576 bytes]
# expect: stdout-at-most=1049600
# expect: stderr-contains=after the 100 MB print
# expect: finishes-within=60
import sys
import time

started = time.monotonic()
print("x" * 100_000_000)
print("after the 100 MB print (%.1f s)" % (time.monotonic() - started), file=sys.stderr)

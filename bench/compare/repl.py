"""A minimal persistent interpreter for the sandbox peers (gVisor, bubblewrap, no sandbox).

Run as `python3 -c "$(cat repl.py)"` inside the sandbox, with stdin and stdout as pipes to the
benchmark. It keeps one IPython InteractiveShell, as pycell's runner and ipykernel do, so the
interpreter's own work per cell is comparable and what differs is the isolation and the transport.

Protocol: one JSON object per line each way. Request {"code": "..."}; reply {"status": "ok" |
"error", "result": repr of the last expression or null, "stdout": what the cell printed,
"error": "Name: message" or null}. The first line it writes is {"status": "ready"}.
"""
import io
import json
import os
import sys

channel = os.fdopen(os.dup(1), "w", buffering=1)  # Replies; the cells' prints go to a buffer.
os.dup2(2, 1)
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

shell = InteractiveShell.instance(colors="NoColor")
shell.displayhook.write_output_prompt = lambda: None
shell.displayhook.write_format_data = lambda *args, **kwargs: None
channel.write('{"status": "ready"}\n')
for line in sys.stdin:
    request = json.loads(line)
    captured = io.StringIO()
    saved, sys.stdout = sys.stdout, captured
    try:
        outcome = shell.run_cell(request["code"], store_history=True)
    finally:
        sys.stdout = saved
    error = outcome.error_before_exec or outcome.error_in_exec
    channel.write(json.dumps({
        "status": "error" if error else "ok",
        "result": None if outcome.result is None else repr(outcome.result),
        "stdout": captured.getvalue(),
        "error": None if error is None else "%s: %s" % (type(error).__name__, error),
    }) + "\n")

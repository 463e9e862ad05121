"""pycell's runner: the Python half of a session.

The zygote (C++, src/kernel/zygote_main.cc) runs this module once with `zygote_init(config)`:
thread pools pinned, the pool's modules imported, one IPython shell built, the heap frozen. Each
session is a fork of that process; once the sandbox is in place the C++ side calls
`serve(control_fd, cpus)`, which answers "execute" frames until the socket closes.

Protocol (src/kernel/frame.h): 4-byte big-endian length + UTF-8 JSON, on descriptor 3. Output of
`print`, of C extensions and of subprocesses goes to descriptors 1 and 2, pipes the server reads.

  server -> runner   {"type": "execute", "id": n, "code": str}
  runner -> server   {"type": "ready", "python": str}                           once, at start
                     {"type": "display", "data": {mime: value}, "metadata": {}}  zero or more
                     {"type": "result", "data": {...}, "metadata": {}, "execution_count": n}
                     {"type": "error", "ename": str, "evalue": str, "traceback": [str]}
                     {"type": "done", "id": n, "status": "ok" | "error",
                      "execution_count": n, "duration_ms": float}

The server treats every frame as hostile (src/kernel/cell_protocol.h): the user's code shares this
process and can write on descriptor 3 too. A frame of an unknown type, a field of the wrong type,
JSON nested deeper than 64 levels, a "done" with another id or an execution count that does not
follow the last one, any frame between cells, descriptors passed on the socket: each ends the
session as a protocol violation. So this module keeps to the rules itself: deep JSON values in a
display are replaced by a note, as over-large ones are.

A session fork (Kernel::RequestFork, between cells):
  server -> runner   {"type": "fork"}
  runner -> server   {"type": "forked", "pid": n, "fds": [stdout, stderr, control, go]}
                     | {"type": "fork_failed", "message": str}
  server -> runner   {"type": "fork_release"}     (it took its copies of the descriptors)
  runner -> server   {"type": "released"}
  and, in the fork, on its own control socket: {"type": "ready", ...} once it is admitted.
"""

import base64
import gc
import json
import os
import signal
import struct
import sys
import time

_MAX_BUNDLE_BYTES = 32 << 20  # A display larger than this is replaced by a note.
_MAX_JSON_DEPTH = 48          # A JSON value nested deeper is replaced by a note (the limit is 64).
_PLAIN_TYPES = (int, bool, str, bytes, type(None))

_control = None  # The control socket's file object, set by serve().
_shell = None    # The InteractiveShell, built in the zygote.


def _finite(value):
    """`value` with NaN and infinities as None: JSON has no spelling for them."""
    if isinstance(value, float):
        return None if value != value or value in (float("inf"), float("-inf")) else value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _send(message):
    # Not ensure_ascii: a lone surrogate (a str Python allows, JSON does not) would be written as
    # a "\udfff" escape the server must refuse; raw, it becomes "?" in the UTF-8 encoding below.
    try:
        text = json.dumps(message, default=str, allow_nan=False, ensure_ascii=False)
    except ValueError:  # NaN or an infinity somewhere in a display's JSON.
        text = json.dumps(_finite(message), default=str, allow_nan=False, ensure_ascii=False)
    data = text.encode("utf-8", "replace")
    _control.write(struct.pack(">I", len(data)) + data)
    _control.flush()


def _recv():
    header = _control.read(4)
    if len(header) < 4:
        return None
    (n,) = struct.unpack(">I", header)
    data = _control.read(n)
    if len(data) < n:
        return None
    return json.loads(data.decode("utf-8"))


def _jsonable_bundle(data):
    """MIME bundle values as JSON: bytes (e.g. PNG) as base64, the rest as given."""
    out = {}
    for mime, value in (data or {}).items():
        mime = str(mime)
        if isinstance(value, (bytes, bytearray)):
            value = base64.b64encode(bytes(value)).decode("ascii")
        elif mime.endswith("json") or isinstance(value, (dict, list)):
            if _too_deep(value, _MAX_JSON_DEPTH):
                value = "[JSON value omitted: nested deeper than %d levels]" % _MAX_JSON_DEPTH
        elif not isinstance(value, str):
            value = str(value)
        out[mime] = value
    size = len(json.dumps(out, default=str))
    if size > _MAX_BUNDLE_BYTES:
        return {"text/plain": "[display of %d bytes omitted: over the %d-byte limit]"
                              % (size, _MAX_BUNDLE_BYTES)}
    return out


def _metadata(metadata):
    """A display's metadata as the protocol takes it: a shallow enough dict, else empty."""
    if not isinstance(metadata, dict) or _too_deep(metadata, _MAX_JSON_DEPTH):
        return {}
    return metadata


def _too_deep(value, levels):
    """True when containers nest more than `levels` deep (iteratively: no recursion limit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, (list, tuple)):
            continue
        if depth > levels:
            return True
        stack.extend((child, depth + 1) for child in item)
    return False


def _build_shell():
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
            _send({"type": "display", "data": _jsonable_bundle(data), "metadata": _metadata(metadata)})

        def clear_output(self, wait=False):
            pass

    class ResultHook(DisplayHook):
        def start_displayhook(self):
            self._pending = None

        def write_output_prompt(self):
            pass

        def compute_format_data(self, result):
            # Builtin scalars have one representation; asking ten MIME formatters is most of a
            # trivial cell's time.
            if type(result) in _PLAIN_TYPES:
                return {"text/plain": repr(result)}, {}
            return super().compute_format_data(result)

        def write_format_data(self, format_dict, md_dict=None):
            _send({"type": "result", "data": _jsonable_bundle(format_dict),
                   "metadata": _metadata(md_dict), "execution_count": self.shell.execution_count})

        def finish_displayhook(self):
            pass

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "NoColor"
    config.InteractiveShell.xmode = "Plain"
    config.InteractiveShell.autocall = 0
    config.InteractiveShell.display_page = True
    shell = InteractiveShell.instance(config=config, displayhook_class=ResultHook,
                                      display_pub_class=Publisher)

    def show_traceback(etype, evalue, stb):
        _send({"type": "error", "ename": getattr(etype, "__name__", str(etype)),
               "evalue": str(evalue), "traceback": list(stb)})

    shell._showtraceback = show_traceback
    shell.enable_gui = lambda gui=None: None  # No event loops here: inline figures only.
    return shell


def zygote_init(config_json):
    """Runs once in the zygote: imports the pool's modules and builds the shell."""
    global _shell
    config = json.loads(config_json)
    cache = config.get("cache_dir") or "/tmp"
    os.environ["MPLCONFIGDIR"] = cache + "/matplotlib"  # The font cache, built once.
    os.environ["IPYTHONDIR"] = cache + "/ipython"
    for name in config.get("preload", []):
        if name == "matplotlib":
            import matplotlib
            matplotlib.use("module://matplotlib_inline.backend_inline")
            import matplotlib.pyplot  # noqa: F401  (builds the font cache once, here)
        else:
            __import__(name)
    _shell = _build_shell()
    if "matplotlib" in sys.modules:
        _shell.enable_matplotlib("inline")
    # One silent cell pays IPython's lazy start-up here, once, instead of in every session.
    _shell.run_cell("None", store_history=False, silent=True)
    # Keep the collector away from everything imported so far: forked sessions then share those
    # pages with the zygote instead of copying them on the first collection.
    gc.collect()
    gc.freeze()


def _prepare_session(cpus):
    """Runs in the session, after the sandbox is in place and before the first cell."""
    threads = str(max(1, int(cpus)))
    os.environ.clear()
    os.environ.update({
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "USER": "pycell",
        "LOGNAME": "pycell",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "MPLCONFIGDIR": "/tmp/.matplotlib",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "OPENBLAS_NUM_THREADS": threads,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "NUMEXPR_NUM_THREADS": threads,
    })
    if threads != "1":  # The zygote pinned one thread; only a bigger share needs a change.
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(int(threads))
        except Exception:
            pass
    # Every session gets its own random state, not the zygote's.
    import random
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    # The sandbox reset every signal to its default; restore what Python's own startup chose, so
    # that a write to a closed pipe or past the file-size limit raises OSError instead of killing
    # the session. (subprocess restores the defaults in the programs it starts.)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    os.chdir("/mnt/data")
    # Unbuffered text streams: output reaches the server as it is written, in order.
    import io
    sys.stdout = io.TextIOWrapper(open(1, "wb", buffering=0, closefd=False), encoding="utf-8",
                                  errors="replace", line_buffering=True, write_through=True)
    sys.stderr = io.TextIOWrapper(open(2, "wb", buffering=0, closefd=False), encoding="utf-8",
                                  errors="replace", line_buffering=True, write_through=True)
    sys.stdin = open(os.devnull, "r")


def _run_cell(code):
    started = time.perf_counter()
    status = "ok"
    try:
        # SIGINT (the server's interrupt) raises KeyboardInterrupt only while a cell runs.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            result = _shell.run_cell(code, store_history=True)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if not result.success:
            status = "error"
    except KeyboardInterrupt:
        _send({"type": "error", "ename": "KeyboardInterrupt", "evalue": "",
               "traceback": ["KeyboardInterrupt"]})
        status = "error"
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    return status, (time.perf_counter() - started) * 1000.0


def _open_control(control_fd):
    import io
    raw = os.fdopen(control_fd, "r+b", buffering=0, closefd=False)
    return io.BufferedRWPair(raw, raw, 1 << 16)


def _fork():
    """Forks this session (the protocol above); returns in both the origin and the fork."""
    global _control
    import _pycell
    try:
        forked = _pycell.fork_session()
    except OSError as e:
        _send({"type": "fork_failed", "message": str(e)})
        return
    if forked is None:  # The fork's code process: descriptor 3 is its own socket now.
        _control = _open_control(3)
        _send({"type": "ready", "python": sys.version.split()[0]})
        return
    pid, *fds = forked
    _send({"type": "forked", "pid": pid, "fds": fds})
    try:
        _recv()  # "fork_release", or nothing: either way these copies are not ours to keep.
    finally:
        for fd in fds:
            os.close(fd)
    _send({"type": "released"})


def serve(control_fd, cpus):
    """The session's loop: one cell at a time, until the server closes the socket."""
    global _control
    _control = _open_control(control_fd)
    _prepare_session(cpus)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _send({"type": "ready", "python": sys.version.split()[0]})
    while True:
        try:
            message = _recv()
            if message is None or message.get("type") == "shutdown":
                break
            if message.get("type") == "fork":
                _fork()
                continue
            if message.get("type") != "execute":
                continue
            status, duration_ms = _run_cell(str(message.get("code", "")))
            _send({"type": "done", "id": message.get("id", 0), "status": status,
                   "duration_ms": duration_ms, "execution_count": _shell.execution_count - 1})
        except KeyboardInterrupt:
            # An interrupt that arrived between cells: the cell it was meant for has ended.
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    os._exit(0)

"""runbox's Python session worker: a persistent interpreter inside the sandbox.

It reads cells from fd 3 (``EXEC <id> <nbytes>\\n`` followed by the code) and answers on fd 4 with one JSON
object per line: ``ready`` once, ``display`` for rich outputs while a cell runs, and ``done`` when it ends.
User output goes to fds 1 and 2 untouched, so the output of subprocesses arrives too. Standard library only.
"""

import ast
import base64
import builtins
import json
import linecache
import os
import signal
import sys
import traceback

PROTO_IN = os.fdopen(3, "rb", buffering=0)
PROTO_OUT = os.fdopen(4, "wb", buffering=0)
WORKER_FILE = os.path.abspath(__file__)
MIME_METHODS = [
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"),
]
current_cell = [0]
# Whether a cell is running: SIGINT interrupts cells only. One that arrives while the worker reads a cell or sends
# a reply is dropped (the engine repeats an interrupt until the cell ends), so it can never cut a message short.
in_cell = [False]


def on_sigint(_signum, _frame):
    if in_cell[0]:
        raise KeyboardInterrupt


def send(message):
    """Flushes user output first, so that a message never overtakes the output it follows."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    PROTO_OUT.write((json.dumps(message) + "\n").encode())


def mime_bundle(obj):
    """The MIME types an object can show itself as; text/plain always."""
    bundle = {}
    if is_figure(obj):
        png = figure_png(obj)
        if png:
            bundle["image/png"] = png
    for mime, method in MIME_METHODS:
        fn = getattr(obj, method, None)
        if fn is None or isinstance(obj, type):
            continue
        try:
            value = fn()
        except Exception:
            continue
        if value is None:
            continue
        if isinstance(value, tuple):
            value = value[0]
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode()
        elif mime == "application/json" and not isinstance(value, str):
            value = json.dumps(value)
        bundle[mime] = value
    try:
        bundle["text/plain"] = repr(obj)
    except Exception as e:  # a broken __repr__ must not break the cell
        bundle["text/plain"] = "<unrepresentable object: %s>" % e
    return bundle


def is_figure(obj):
    mpl = sys.modules.get("matplotlib.figure")
    return mpl is not None and isinstance(obj, mpl.Figure)


def figure_png(fig):
    import io

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", bbox_inches="tight")
    except Exception:
        return None
    return base64.b64encode(buf.getvalue()).decode()


def display(*objs, **_kwargs):
    """Shows objects as rich outputs of the running cell, like IPython's display()."""
    for obj in objs:
        send({"event": "display", "id": current_cell[0], "data": mime_bundle(obj)})
        forget_figure(obj)


def forget_figure(obj):
    """A figure shown explicitly (displayed, or the cell's result) is closed in pyplot, so that the end of the cell
    does not send it a second time. The Figure object itself still works (savefig, display again)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None and is_figure(obj):
        try:
            plt.close(obj)
        except Exception:
            pass


def flush_figures():
    """Sends every open matplotlib figure as a PNG and closes it (end of cell, and plt.show())."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for num in plt.get_fignums():
        fig = plt.figure(num)
        png = figure_png(fig)
        if png:
            send({"event": "display", "id": current_cell[0], "data": {"image/png": png, "text/plain": repr(fig)}})
    plt.close("all")


def patch_pyplot_on_import():
    """Makes plt.show() send the open figures, as soon as a cell imports pyplot (Agg draws them, headless).
    Wrapping __import__ keeps matplotlib out of the worker until a cell asks for it."""
    real_import = builtins.__import__
    patched = [False]
    depth = [0]

    def importing(name, *args, **kwargs):
        # Only once the outermost import is done: pyplot's own imports run while it is half-initialised, and its
        # body would then define show() over the patch.
        depth[0] += 1
        try:
            module = real_import(name, *args, **kwargs)
        finally:
            depth[0] -= 1
        if depth[0] == 0 and not patched[0] and "matplotlib.pyplot" in sys.modules:
            patched[0] = True
            sys.modules["matplotlib.pyplot"].show = lambda *a, **k: flush_figures()
        return module

    builtins.__import__ = importing


def user_frames(tb):
    """Traceback entries of the user's cells only: the worker's own frames are cut away."""
    entries = traceback.extract_tb(tb)
    return [e for e in entries if os.path.abspath(e.filename) != WORKER_FILE]


def format_error(exc):
    lines = ["Traceback (most recent call last):\n"]
    frames = user_frames(exc.__traceback__)
    if frames:
        lines.extend(traceback.format_list(frames))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return {"name": type(exc).__name__, "value": str(exc), "traceback": "".join(lines)}


def run_cell(namespace, cell_id, code, count):
    filename = "<cell %d>" % count
    # Registered so that tracebacks can quote the cell's lines.
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    result = None
    try:
        tree = ast.parse(code, filename=filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), namespace)
        if last is not None:
            value = eval(compile(last, filename, "eval"), namespace)
            if value is not None:
                builtins._ = value
                result = mime_bundle(value)
                forget_figure(value)
        flush_figures()
        return {"status": "ok", "result": result}
    except KeyboardInterrupt:
        return {"status": "interrupted", "error": {"name": "KeyboardInterrupt", "value": "", "traceback": ""}}
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
        return {"status": "exit", "exit_code": code}
    except BaseException as e:  # the user's exception, reported as the cell's error
        flush_figures()
        return {"status": "error", "error": format_error(e)}


def read_exactly(n):
    chunks = []
    while n > 0:
        chunk = PROTO_IN.read(n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_line():
    line = bytearray()
    while True:
        b = PROTO_IN.read(1)
        if not b:
            raise EOFError
        if b == b"\n":
            return bytes(line)
        line += b


def main():
    signal.signal(signal.SIGINT, on_sigint)
    os.environ["MPLBACKEND"] = "Agg"
    patch_pyplot_on_import()
    builtins.display = display
    namespace = {"__name__": "__main__", "__builtins__": builtins, "display": display}
    sys.argv = [""]
    sys.path.insert(0, "/workspace")
    count = 0
    send({"event": "ready", "language": "python", "version": sys.version.split()[0]})
    while True:
        try:
            header = read_line().decode().split()
            if len(header) != 3 or header[0] != "EXEC":
                continue
            cell_id, size = int(header[1]), int(header[2])
            code = read_exactly(size).decode("utf-8", "replace")
        except EOFError:
            return
        except KeyboardInterrupt:
            continue  # an interrupt between cells interrupts nothing
        count += 1
        current_cell[0] = cell_id
        try:
            try:
                in_cell[0] = True
                reply = run_cell(namespace, cell_id, code, count)
            finally:
                in_cell[0] = False
        except KeyboardInterrupt:  # arrived between the cell's end and the reply
            reply = {"status": "interrupted"}
        in_cell[0] = False
        reply.update({"event": "done", "id": cell_id, "execution_count": count})
        send(reply)
        if reply["status"] == "exit":
            sys.stdout.flush()
            os._exit(reply.get("exit_code") or 0)


if __name__ == "__main__":
    main()

# Prelude of a warm Python sandbox (run with `python3 -u -c`): waits for the go byte on fd 3, then runs the
# request's entry file as `__main__`, the way `python3 -u main.py args...` would.
def _runbox_run():
    import os
    import sys

    os.read(3, 1)
    os.close(3)
    import json

    with open("/workspace/.runbox/request.json", "rb") as f:
        req = json.load(f)
    os.environ.update(req["env"])
    entry = req["entry"]
    sys.argv = [entry] + req["args"]
    sys.path[0] = os.path.dirname(os.path.join("/workspace", entry))
    original_hook = sys.excepthook

    def hook(kind, value, tb):
        # Frames of this prelude are not the user's: cut them, as a plain `python3 main.py` would show none.
        while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
            tb = tb.tb_next
        original_hook(kind, value, tb)

    sys.excepthook = hook
    with open(entry, "rb") as f:
        code = compile(f.read(), entry, "exec")
    main = sys.modules["__main__"].__dict__
    del main["_runbox_run"]
    main["__file__"] = entry
    exec(code, main)


_runbox_run()

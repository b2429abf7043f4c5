# Prelude of a warm Python sandbox (run with `python3 -u -c`): waits for the go byte on fd 3, then runs the
# request's entry file as `__main__`, the way `python3 -u main.py args...` would, and ends the way Python ends
# (non-daemon threads joined, atexit handlers run, exit status from SystemExit or 1 after an uncaught error)
# but without the interpreter's final teardown, which nothing can observe in a sandbox about to be destroyed.
def _runbox_run():
    import os
    import sys

    os.read(3, 1)
    os.close(3)

    # NUL-separated lists written by the engine (json would cost an import of `re` on every run).
    def nul_list(name):
        with open("/workspace/.runbox/" + name, "rb") as f:
            return [item.decode("utf-8", "surrogateescape") for item in f.read().split(b"\0")[:-1]]

    for item in nul_list("env"):
        key, _, value = item.partition("=")
        os.environ[key] = value
    sys.argv = nul_list("args")
    # Like `python3 main.py`: argv[0] as given, __file__ and code locations absolute.
    entry = os.path.join("/workspace", sys.argv[0])
    sys.path[0] = os.path.dirname(entry)
    main = sys.modules["__main__"].__dict__
    del main["_runbox_run"]
    main["__file__"] = entry

    def user_frames(tb):
        # Frames of this prelude are not the user's: a plain `python3 main.py` would show none.
        while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
            tb = tb.tb_next
        return tb

    status = 0
    try:
        with open(entry, "rb") as f:
            code = compile(f.read(), entry, "exec")
        exec(code, main)
    except SystemExit as e:
        if e.code is None:
            status = 0
        elif isinstance(e.code, int):
            status = e.code
        else:
            print(e.code, file=sys.stderr)
            status = 1
    except BaseException as e:
        e = e.with_traceback(user_frames(e.__traceback__))
        sys.excepthook(type(e), e, e.__traceback__)
        status = 1
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(status & 0xFF)


_runbox_run()

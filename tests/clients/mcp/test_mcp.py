"""runbox's MCP server driven by the official MCP Python SDK (the `mcp` package pinned in requirements.txt).

Three doors, each against a real runbox started here: `runbox mcp` on stdio with the engine in-process, `/mcp`
(streamable HTTP) on `runbox serve` behind API keys, and `runbox mcp --url` on stdio through that server. Each
initializes, lists the tools, calls every tool, gets a PNG from a matplotlib cell, and sees a session's state
persist across two calls. Run by run.sh; RUNBOX_BIN names the binary.
"""

import asyncio
import base64
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback

import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

RUNBOX = os.environ.get("RUNBOX_BIN", "target/debug/runbox")
KEY_A = "mcp-test-key-alice-0123456789"
KEY_B = "mcp-test-key-bob-0123456789"
TOOLS = {
    "execute_code", "list_languages", "create_session", "run_in_session",
    "close_session", "upload_file", "read_file", "list_files",
}
PNG = b"\x89PNG\r\n\x1a\n"

passed, failed = [], []


def check(cond, what, detail=""):
    if not cond:
        raise AssertionError(f"{what}: {detail}")


def texts(result):
    return "\n".join(c.text for c in result.content if c.type == "text")


def images(result):
    return [c for c in result.content if c.type == "image"]


async def call(session, tool, args, *, error=False):
    result = await session.call_tool(tool, args)
    check(bool(result.is_error) == error, f"{tool} isError={result.is_error}, expected {error}", texts(result))
    return result


async def exercise(session, label, on_session=None):
    """Every tool, through one client session. `on_session(id)` runs while the MCP session is open."""
    init = await session.initialize()
    check(init.server_info.name == "runbox", "server name", init.server_info)

    tools = (await session.list_tools()).tools
    check({t.name for t in tools} == TOOLS, "tool names", [t.name for t in tools])
    for t in tools:
        check(t.description and t.input_schema.get("type") == "object", f"{t.name} is described", t)

    langs = texts(await call(session, "list_languages", {}))
    check(re.search(r"^python \|.*\| yes \| yes \|", langs, re.M), "python is listed with sessions", langs)

    out = texts(await call(session, "execute_code", {
        "language": "python", "code": "import sys\nprint(sys.stdin.read().upper())", "stdin": "shout",
    }))
    check("status: ok" in out and "SHOUT" in out, "execute_code runs with stdin", out)
    out = texts(await call(session, "execute_code", {"language": "bash", "code": "echo oops >&2; exit 3"}))
    check("exit code: 3" in out and "oops" in out, "a failing program is a result, not an error", out)
    out = texts(await call(session, "execute_code", {
        "language": "python", "code": "while True: pass", "timeout": 0.5,
    }))
    check("status: timeout" in out, "the timeout applies", out)
    out = texts(await call(session, "execute_code", {"language": "cobol-99", "code": "x"}, error=True))
    check(out.startswith("error "), "an unknown language is a tool error", out)
    out = texts(await call(session, "execute_code", {"language": "python", "code": "1", "timeout": -1}, error=True))
    check("invalid_field" in out, "a negative timeout is a tool error", out)

    created = texts(await call(session, "create_session", {"language": "python"}))
    sid = re.search(r"session_id: (\S+)", created).group(1)
    await call(session, "run_in_session", {"session_id": sid, "code": "x = 41"})
    out = texts(await call(session, "run_in_session", {"session_id": sid, "code": "print(x + 1)\nx * 2"}))
    check("42" in out and "82" in out, "state persists across calls", out)

    fig = await call(session, "run_in_session", {"session_id": sid, "code": (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2])\n"
        "plt.savefig('plot.png')\n"
        "plt.show()\n"
    ), "timeout": 60})
    pngs = [i for i in images(fig) if i.mime_type == "image/png"]
    check(pngs and base64.b64decode(pngs[0].data).startswith(PNG), "a figure comes back as a PNG", fig.content)

    out = texts(await call(session, "run_in_session", {"session_id": sid, "code": "1/0"}))
    check("status: error" in out and "ZeroDivisionError" in out, "a raising cell shows its traceback", out)

    await call(session, "upload_file", {"session_id": sid, "path": "data/in.txt", "content": "hello"})
    await call(session, "upload_file", {
        "session_id": sid, "path": "data/raw.bin", "content": base64.b64encode(b"\x00\xff\x01").decode(),
        "encoding": "base64",
    })
    out = texts(await call(session, "run_in_session", {
        "session_id": sid, "code": "print(open('data/in.txt').read(), list(open('data/raw.bin','rb').read()))",
    }))
    check("hello [0, 255, 1]" in out, "uploaded files are in the workspace", out)
    listing = texts(await call(session, "list_files", {"session_id": sid}))
    check("data/ (directory)" in listing and "plot.png" in listing, "list_files lists the workspace", listing)
    listing = texts(await call(session, "list_files", {"session_id": sid, "path": "data"}))
    check("in.txt (5 bytes)" in listing, "list_files lists a directory", listing)
    check(texts(await call(session, "read_file", {"session_id": sid, "path": "data/in.txt"})) == "hello",
          "read_file returns text", "")
    raw = texts(await call(session, "read_file", {"session_id": sid, "path": "data/raw.bin"}))
    check(raw.endswith(base64.b64encode(b"\x00\xff\x01").decode()), "read_file returns binary as base64", raw)
    plot = await call(session, "read_file", {"session_id": sid, "path": "plot.png"})
    check(images(plot) and base64.b64decode(images(plot)[0].data).startswith(PNG), "read_file returns images",
          plot.content)
    out = texts(await call(session, "read_file", {"session_id": sid, "path": "../../etc/passwd"}, error=True))
    check("invalid_path" in out, "paths are confined to the workspace", out)
    out = texts(await call(session, "list_files", {"session_id": sid, "sesion": 1}, error=True))
    check("invalid_arguments" in out and "sesion" in out, "unknown arguments are named", out)

    if on_session:
        await on_session(sid)

    await call(session, "close_session", {"session_id": sid})
    out = texts(await call(session, "run_in_session", {"session_id": sid, "code": "x"}, error=True))
    check("not_found" in out, "a closed session is gone", out)


async def run(label, body):
    started = time.monotonic()
    try:
        await asyncio.wait_for(body(), timeout=120)
        passed.append(label)
        print(f"ok   {label} ({time.monotonic() - started:.1f} s)", flush=True)
    except BaseException as e:  # noqa: BLE001 - report every failure, including timeouts and task-group errors
        failed.append(label)
        # The cause first, on lines of their own: task groups nest it deep inside a long traceback.
        print(f"FAIL {label} after {time.monotonic() - started:.1f} s", flush=True)
        for leaf in leaves(e):
            print(f"  cause: {type(leaf).__name__}: {leaf}", flush=True)
        traceback.print_exc()


def leaves(e):
    """The exceptions at the bottom of (possibly nested) exception groups."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for inner in e.exceptions for leaf in leaves(inner)]
    return [e]


def start_server(data_dir, log):
    config = os.path.join(data_dir, "runbox.toml")
    with open(config, "w") as f:
        f.write(f'[[api_keys]]\nname = "alice"\nkey = "{KEY_A}"\n\n[[api_keys]]\nname = "bob"\nkey = "{KEY_B}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOX_") or k == "RUNBOX_REQUIRE_RUNTIMES"}
    server = subprocess.Popen(
        [RUNBOX, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(data_dir, "data"),
         "--config", config],
        stdout=subprocess.PIPE, stderr=log, env=env, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            return server, m.group(1)
    server.kill()
    raise RuntimeError("runbox serve did not say it was listening; see its log")


def stdio_params(data_dir, *args, env=None):
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOX_")}
    base["RUNBOX_DATA_DIR"] = os.path.join(data_dir, "local")
    base.update(env or {})
    return StdioServerParameters(command=RUNBOX, args=["mcp", *args], env=base)


async def main():
    with tempfile.TemporaryDirectory(prefix="runbox-mcp-test-") as tmp:
        stdio_log_path = os.path.join(tmp, "stdio.log")

        async def local_stdio():
            with open(stdio_log_path, "w") as stdio_log:
                async with stdio_client(stdio_params(tmp), errlog=stdio_log) as (read, write):
                    async with ClientSession(read, write) as session:
                        await exercise(session, "stdio")

        await run("runbox mcp (stdio, engine in-process)", local_stdio)
        if failed:
            print("--- runbox mcp (stdio) log (last 40 lines) ---")
            with open(stdio_log_path) as f:
                print("".join(f.readlines()[-40:]))

        log = open(os.path.join(tmp, "server.log"), "w")
        server, url = start_server(tmp, log)
        try:
            async def http_mcp():
                async with httpx2.AsyncClient() as raw:
                    r = await raw.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
                    check(r.status_code == 401 and r.json()["code"] == "unauthorized", "/mcp needs a key", r.text)
                    r = await raw.post(f"{url}/mcp", json={}, headers={
                        "authorization": f"Bearer {KEY_A}", "origin": "https://evil.example"})
                    check(r.status_code == 403 and r.json()["code"] == "origin_not_allowed",
                          "/mcp refuses foreign pages", r.text)

                async def owned_by_alice(sid):
                    async with httpx2.AsyncClient(base_url=url) as rest:
                        mine = await rest.get(f"/sessions/{sid}", headers={"authorization": f"Bearer {KEY_A}"})
                        check(mine.status_code == 200, "the caller's key sees its session", mine.text)
                        other = await rest.get(f"/sessions/{sid}", headers={"authorization": f"Bearer {KEY_B}"})
                        check(other.status_code == 404, "another key does not", other.text)

                client = create_mcp_http_client(headers={"authorization": f"Bearer {KEY_A}"})
                async with client, streamable_http_client(f"{url}/mcp", http_client=client) as (read, write):
                    async with ClientSession(read, write) as session:
                        await exercise(session, "http", on_session=owned_by_alice)

            await run("/mcp on runbox serve (streamable HTTP)", http_mcp)

            async def remote_stdio():
                params = stdio_params(tmp, "--url", url, env={"RUNBOX_API_KEY": KEY_A})
                async with stdio_client(params) as (read, write):
                    async with ClientSession(read, write) as session:
                        await exercise(session, "remote")

            await run("runbox mcp --url (stdio, through the server)", remote_stdio)

            async def stops_with_a_client_connected():
                # An open MCP stream must not hold the server's drain open: SIGTERM ends it within moments.
                client = create_mcp_http_client(headers={"authorization": f"Bearer {KEY_A}"})
                stopped_in = None
                try:
                    async with client, streamable_http_client(f"{url}/mcp", http_client=client) as (read, write):
                        async with ClientSession(read, write) as session:
                            await session.initialize()
                            await session.list_tools()
                            await asyncio.sleep(0.5)  # the client opens its GET stream after initializing
                            started = time.monotonic()
                            server.terminate()
                            while server.poll() is None and time.monotonic() - started < 15:
                                await asyncio.sleep(0.1)
                            stopped_in = time.monotonic() - started
                except Exception:  # noqa: BLE001 - the server going away may surface in the client; that is fine
                    pass
                check(server.poll() is not None and stopped_in is not None and stopped_in < 10,
                      "runbox serve stops on SIGTERM with an MCP client connected", f"after {stopped_in} s")

            await run("runbox serve drains with an MCP client connected", stops_with_a_client_connected)
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                failed.append("runbox serve stops on SIGTERM with MCP clients gone")
            log.close()
            if failed:
                print("--- runbox serve log (last 40 lines) ---")
                with open(os.path.join(tmp, "server.log")) as f:
                    print("".join(f.readlines()[-40:]))

    print(f"mcp: {len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""A tiny stdio MCP server for the external-worker-mode tests: it reports what it sees
(environment, pid, era) and does what the tests need a wrapped server to do (sleep, answer
late from a thread, flood its client with log messages, start grandchildren, leave its process
group, write to stderr and die, try to read files or signal processes).

It speaks the protocol by hand, with no SDK, so each era can be enforced strictly:

  --era legacy   only the initialize lifecycle; refuses any request carrying the 2026-07-28
                 `_meta` envelope (as real servers do once a connection is in that era)
  --era modern   only 2026-07-28: refuses `initialize`, requires the envelope on every request
  --era both     (default) locks to the era of the first request, like the Python SDK 2.3

  --collide NAME     also offer a tool called NAME (e.g. session_info)
  --session-arg      give the `search` tool its own `session` argument
  --start-delay S    sleep S seconds before reading anything (a slow start)
"""

import argparse
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

ENVELOPE = "io.modelcontextprotocol/protocolVersion"
# Set by the `escape` tool: keep the process alive after stdin closes.
LINGER = threading.Event()
CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"


def tool(name, description, properties=None, required=()):
    return {
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties or {}, "required": list(required)},
    }


def tools(args):
    listed = [
        tool("env", "Report this process's environment."),
        tool("whoami", "Report this process's pid, parent pid and the era of the request."),
        tool("sleep", "Sleep for `seconds`.", {"seconds": {"type": "number"}}, ["seconds"]),
        tool(
            "spawn",
            "Start `sleep 600` as a child (detached with setsid when `detach`) and return its pid.",
            {"detach": {"type": "boolean"}},
        ),
        tool(
            "die",
            "Write `text` (with $VARIABLES expanded) to stderr, then exit with `code` at once.",
            {"text": {"type": "string"}, "code": {"type": "integer"}},
        ),
        tool(
            "say",
            "Write `text` to stderr `count` times, with {n} replaced by the line's number.",
            {"text": {"type": "string"}, "count": {"type": "integer"}},
            ["text"],
        ),
        tool("read", "Try to read a file; report its size or the error.", {"path": {"type": "string"}}, ["path"]),
        tool("write", "Try to create a file ($VARIABLES expanded); report the error.", {"path": {"type": "string"}}, ["path"]),
        tool("connect", "Try to open a TCP connection to 127.0.0.1:`port`; report the error.", {"port": {"type": "integer"}}, ["port"]),
        tool("signal", "Try to send SIGTERM to `pid`; report the error.", {"pid": {"type": "integer"}}, ["pid"]),
        tool(
            "signal_owner",
            "Try each way to make `pid` the receiver of a socket's I/O signals; report each error.",
            {"pid": {"type": "integer"}},
            ["pid"],
        ),
    ]
    search = {"query": {"type": "string"}}
    if args.session_arg:
        search["session"] = {"type": "string", "description": "the server's own notion of a session"}
    listed.append(tool("search", "Echo the arguments.", search))
    listed.append(tool(
        "flood",
        "Send `count` log messages of `size` bytes each, as fast as they can be written, then answer.",
        {"count": {"type": "integer"}, "size": {"type": "integer"}},
        ["count", "size"],
    ))
    listed.append(tool(
        "escape",
        "Leave this process's group for its parent's, ignore SIGTERM, and outlive stdin's end.",
    ))
    listed.append(tool(
        "slow_reply",
        "Answer after `seconds` from a background thread; the request loop stays free meanwhile.",
        {"seconds": {"type": "number"}},
        ["seconds"],
    ))
    if args.collide:
        listed.append(tool(args.collide, "A tool whose name Bulkhead also uses."))
    return listed


def text_result(value):
    return {
        "content": [{"type": "text", "text": json.dumps(value)}],
        "structuredContent": value,
        "isError": False,
    }


def call(name, arguments, era):
    if name == "env":
        return text_result({"variables": dict(os.environ)})
    if name == "whoami":
        return text_result({"pid": os.getpid(), "ppid": os.getppid(), "era": era})
    if name == "sleep":
        time.sleep(float(arguments.get("seconds", 1)))
        return text_result({"slept": arguments.get("seconds", 1)})
    if name == "spawn":
        child = subprocess.Popen(
            ["sleep", "600"],
            start_new_session=bool(arguments.get("detach")),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        return text_result({"pid": child.pid})
    if name == "die":
        sys.stderr.write(os.path.expandvars(arguments.get("text", "dying")) + "\n")
        sys.stderr.flush()
        os._exit(int(arguments.get("code", 3)))
    if name == "say":
        count = int(arguments.get("count", 1))
        for n in range(count):
            sys.stderr.write(arguments["text"].replace("{n}", str(n)) + "\n")
        sys.stderr.flush()
        return text_result({"written": count})
    if name == "read":
        try:
            with open(arguments["path"], "rb") as handle:
                return text_result({"bytes": len(handle.read())})
        except OSError as error:
            return text_result({"error": error.strerror or str(error)})
    if name == "write":
        try:
            with open(os.path.expandvars(arguments["path"]), "w") as handle:
                handle.write("probe")
            return text_result({"error": None})
        except OSError as error:
            return text_result({"error": error.strerror or str(error)})
    if name == "connect":
        try:
            socket.create_connection(("127.0.0.1", int(arguments["port"])), timeout=5).close()
            return text_result({"error": None})
        except OSError as error:
            return text_result({"error": error.strerror or str(error)})
    if name == "escape":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.setpgid(0, os.getpgid(os.getppid()))
        LINGER.set()
        return text_result({"pid": os.getpid(), "pgid": os.getpgid(0)})
    if name == "signal":
        try:
            os.kill(int(arguments["pid"]), signal.SIGTERM)
            return text_result({"error": None})
        except OSError as error:
            return text_result({"error": error.strerror or str(error)})
    if name == "signal_owner":
        return text_result(signal_owner(int(arguments["pid"])))
    return text_result({"name": name, "arguments": arguments})


# fcntl and ioctl requests that choose who gets a descriptor's SIGIO/SIGURG (Linux numbers).
F_SETOWN, F_SETSIG, F_SETOWN_EX, F_OWNER_PID = 8, 10, 15, 1
FIOSETOWN, SIOCSPGRP, FIOASYNC = 0x8901, 0x8902, 0x5452


def signal_owner(pid):
    """Each attempt on a fresh socket (closed at once, so no signal is ever delivered)."""
    attempts = {
        "fcntl_setown": lambda fd: fcntl.fcntl(fd, F_SETOWN, pid),
        "fcntl_setown_ex": lambda fd: fcntl.fcntl(fd, F_SETOWN_EX, struct.pack("ii", F_OWNER_PID, pid)),
        "fcntl_setsig": lambda fd: fcntl.fcntl(fd, F_SETSIG, signal.SIGTERM),
        "fcntl_async": lambda fd: fcntl.fcntl(fd, fcntl.F_SETFL, os.O_ASYNC),
        "ioctl_fiosetown": lambda fd: fcntl.ioctl(fd, FIOSETOWN, struct.pack("i", pid)),
        "ioctl_siocspgrp": lambda fd: fcntl.ioctl(fd, SIOCSPGRP, struct.pack("i", pid)),
        "ioctl_fioasync": lambda fd: fcntl.ioctl(fd, FIOASYNC, struct.pack("i", 1)),
    }
    outcome = {}
    for name, attempt in attempts.items():
        one, other = socket.socketpair()
        try:
            attempt(one.fileno())
            outcome[name] = None
        except OSError as error:
            outcome[name] = error.strerror or str(error)
        finally:
            one.close()
            other.close()
    return outcome


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--era", choices=["legacy", "modern", "both"], default="both")
    parser.add_argument("--collide")
    parser.add_argument("--session-arg", action="store_true")
    parser.add_argument("--start-delay", type=float, default=0)
    args = parser.parse_args()
    time.sleep(args.start_delay)
    locked = None if args.era == "both" else args.era
    initialized = False
    sys.stderr.write(f"probe server {os.getpid()} starting ({args.era})\n")
    sys.stderr.flush()

    writing = threading.Lock()

    def send(message):
        with writing:
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()

    def answer_later(request_id, seconds, extra):
        # Like most SDK servers, a cancellation is not answered: the reply, if the thread ever
        # gets there, is the only one.
        def reply():
            time.sleep(seconds)
            send({"jsonrpc": "2.0", "id": request_id, "result": dict(text_result({"slept": seconds}), **extra)})
        threading.Thread(target=reply, daemon=True).start()

    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "id" not in message or "method" not in message:
            continue
        request_id, method = message["id"], message["method"]
        params = message.get("params") or {}
        meta = params.get("_meta") or {}
        modern = ENVELOPE in meta

        def error(code, text):
            send({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": text}})

        if method == "initialize":
            if locked == "modern":
                error(-32601, "initialize is not part of protocol 2026-07-28")
                continue
            locked, initialized = "legacy", True
            send({"jsonrpc": "2.0", "id": request_id, "result": {
                "protocolVersion": params.get("protocolVersion", "2025-11-25"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "probe", "version": "1"},
            }})
            continue
        if locked is None:
            locked = "modern" if modern else "legacy"
        if locked == "legacy":
            if modern:
                error(-32600, "this connection serves the initialize era; the 2026-07-28 envelope is refused")
                continue
            if not initialized:
                error(-32002, "not initialized")
                continue
        elif not (modern and CAPABILITIES in meta):
            error(-32602, "protocol 2026-07-28 requires the _meta envelope on every request")
            continue
        extra = {"resultType": "complete"} if locked == "modern" else {}
        if method == "server/discover" and locked == "modern":
            result = {"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
                      "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "probe", "version": "1"}}}
        elif method == "tools/list":
            result = {"tools": tools(args)}
            if locked == "modern":
                result.update({"ttlMs": 0, "cacheScope": "private"})
        elif method == "tools/call" and params.get("name") == "flood":
            arguments = params.get("arguments") or {}
            data = "x" * int(arguments.get("size", 4096))
            for number in range(int(arguments.get("count", 1))):
                send({"jsonrpc": "2.0", "method": "notifications/message",
                      "params": {"level": "info", "logger": "flood", "data": f"{number} {data}"}})
            result = text_result({"sent": int(arguments.get("count", 1))})
        elif method == "tools/call" and params.get("name") == "slow_reply":
            answer_later(request_id, float((params.get("arguments") or {}).get("seconds", 1)), extra)
            continue
        elif method == "tools/call":
            result = call(params.get("name"), params.get("arguments") or {}, locked)
        elif method == "ping":
            result = {}
        else:
            error(-32601, f"method not found: {method}")
            continue
        result.update(extra)
        send({"jsonrpc": "2.0", "id": request_id, "result": result})
    while LINGER.is_set():
        time.sleep(3600)


if __name__ == "__main__":
    main()

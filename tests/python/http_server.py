"""Start `bulkhead serve` on an ephemeral loopback port for a test, and stop it afterwards."""

import contextlib
import re
import subprocess
import threading
import time


@contextlib.contextmanager
def bulkhead_serve(bulkhead_bin: str, *args: str, listen: str = "127.0.0.1:0"):
    """Yield the MCP endpoint URL of a fresh `bulkhead serve --http LISTEN ARGS` (an ephemeral
    loopback port unless LISTEN names one)."""
    process = subprocess.Popen(
        [bulkhead_bin, "serve", "--http", listen, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    found = threading.Event()
    url = {}
    log = []

    def read_stderr():
        for line in process.stderr:
            log.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            if match and not found.is_set():
                url["value"] = match.group(1)
                found.set()

    threading.Thread(target=read_stderr, daemon=True).start()
    try:
        assert found.wait(20), "bulkhead serve did not start:\n" + "".join(log)
        ready = url["value"].replace("/mcp", "/readyz")
        import urllib.request

        for _ in range(200):
            try:
                with urllib.request.urlopen(ready) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        yield url["value"]
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""A real OAuth authorization server for the SDK's OAuth client: npm's oidc-provider, run by
tests/oauth/provider.mjs on Node 22 (installed by scripts/oauth-provider on first use)."""

import contextlib
import json
import socket
import subprocess

from conftest import REPO


def free_loopback_port() -> int:
    """A loopback port no one listens on now, for a server that must know its URL at start."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def oidc_provider():
    """Yield the issuer URL of a fresh provider; it stops when the block ends."""
    installed = subprocess.run(
        [str(REPO / "scripts" / "oauth-provider")], capture_output=True, text=True, check=False
    )
    assert installed.returncode == 0, f"scripts/oauth-provider failed:\n{installed.stderr}"
    node = installed.stdout.strip()
    process = subprocess.Popen(
        [node, str(REPO / "tests" / "oauth" / "provider.mjs")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready = process.stdout.readline()
        assert ready, "the authorization server did not start"
        yield json.loads(ready)["issuer"]
    finally:
        process.kill()
        process.wait()

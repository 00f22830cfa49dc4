"""The official MCP Python SDK (2.3.x) against `bulkhead stdio --wrap -- ...`: real stdio servers
from the registries (mcp-server-time from PyPI, server-everything from npm) and the probe server
in its strict single-era modes, each reached by a 2026-07-28 client (default mode) and a legacy
client (mode="legacy"). The registry servers are installed by scripts/wrap-servers (scripts/test
runs it first); a missing one fails the test, never skips it."""

import json
import os
import pathlib
import subprocess

import pytest
from mcp import Client, StdioServerParameters

from conftest import REPO

pytestmark = pytest.mark.anyio

VENV = REPO / ".venv-wrap"
NODE_MODULES = REPO / "tests" / "servers" / "node_modules"
EVERYTHING = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
PROBE = REPO / "tests" / "servers" / "probe_server.py"


def installed(path: pathlib.Path) -> str:
    assert path.exists(), f"{path} is missing: run scripts/wrap-servers (needs PyPI and npm)"
    return str(path)


def wrapped(bulkhead_bin: str, *command: str, allow: tuple[str, ...] = ()) -> StdioServerParameters:
    flags = [flag for path in allow for flag in ("--wrap-allow-path", path)]
    return StdioServerParameters(command=bulkhead_bin, args=["stdio", *flags, "--wrap", "--", *command])


MODES = [("auto", "2026-07-28"), ("legacy", "2025-11-25")]


@pytest.mark.parametrize(("mode", "version"), MODES)
async def test_mcp_server_time_in_both_eras_one_process_per_session(bulkhead_bin, mode, version):
    server = wrapped(bulkhead_bin, installed(VENV / "bin" / "mcp-server-time"))
    async with Client(server, mode=mode) as client:
        assert client.protocol_version == version
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert names == ["convert_time", "get_current_time", "session_close", "session_info", "session_open"]
        result = await client.call_tool("get_current_time", {"timezone": "Asia/Tokyo"})
        assert not result.is_error
        assert result.structured_content["timezone"] == "Asia/Tokyo"

        opened = (await client.call_tool("session_open", {})).structured_content
        default_pid = (await client.call_tool("session_info", {})).structured_content["pid"]
        assert opened["pid"] != default_pid
        converted = await client.call_tool(
            "convert_time",
            {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo", "session": opened["session"]},
        )
        assert converted.structured_content["target"]["timezone"] == "Asia/Tokyo"


@pytest.mark.parametrize(("mode", "version"), MODES)
async def test_server_everything_in_both_eras(bulkhead_bin, mode, version):
    # No --wrap-allow-path: the read set derived for a script under node_modules holds its
    # dependencies.
    server = wrapped(bulkhead_bin, "node", installed(EVERYTHING))
    async with Client(server, mode=mode) as client:
        assert client.protocol_version == version
        echoed = await client.call_tool("echo", {"message": "hello"})
        assert echoed.content[0].text == "Echo: hello"
        environment = json.loads((await client.call_tool("get-env", {})).content[0].text)
        assert sorted(environment) == ["HOME", "PATH", "TMPDIR"]
        prompts = await client.list_prompts()
        assert prompts.prompts


@pytest.mark.parametrize(("era", "mode"), [("modern", "legacy"), ("legacy", "auto")])
async def test_a_single_era_server_serves_a_client_of_the_other_era(bulkhead_bin, era, mode):
    server = wrapped(bulkhead_bin, installed(VENV / "bin" / "python"), str(PROBE), "--era", era)
    async with Client(server, mode=mode) as client:
        whoami = await client.call_tool("whoami", {})
        assert whoami.structured_content["era"] == era


UV = REPO / ".venv-uv" / "bin"


# Claude Desktop's configurations, with no other flag.
PACKAGES = [
    (["npx", "-y", "@modelcontextprotocol/server-everything"], "echo", {"message": "hi"}, "Echo: hi"),
    (["uvx", "mcp-server-time"], "get_current_time", {"timezone": "Asia/Tokyo"}, "Asia/Tokyo"),
]


@pytest.fixture(scope="module")
def package_cache(tmp_path_factory, bulkhead_bin) -> dict[str, str]:
    """One XDG cache for the npx/uvx tests of this module and a PATH with only uv and uvx
    added, as a host's PATH would have them. Each package is installed first by a supervisor
    whose stdin is closed (it installs, starts, and stops at end of input): a first install
    takes longer than the SDK's server/discover probe waits before it falls back to the legacy
    lifecycle, and each test here asserts its era."""
    tools = tmp_path_factory.mktemp("uv-bin")
    for tool in ("uv", "uvx"):
        (tools / tool).symlink_to(installed(UV / tool))
    # The supervisor runs the installers with its own environment, as a host would start it:
    # all of ours (registry, proxy and CA settings), not only the SDK's safe default variables.
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache")),
        "PATH": f"{tools}:{os.environ.get('PATH', '')}",
    }
    for command, *_ in PACKAGES:
        done = subprocess.run(
            [bulkhead_bin, "stdio", "--wrap", "--", *command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert b"installed " in done.stderr, done.stderr.decode()
    return env


@pytest.mark.parametrize(("mode", "version"), MODES)
@pytest.mark.parametrize(("command", "tool", "arguments", "expected"), PACKAGES)
async def test_npx_and_uvx_packages_installed_once_serve_both_eras(
    bulkhead_bin, package_cache, mode, version, command, tool, arguments, expected
):
    server = StdioServerParameters(command=bulkhead_bin, args=["stdio", "--wrap", "--", *command], env=package_cache)
    async with Client(server, mode=mode) as client:
        assert client.protocol_version == version
        result = await client.call_tool(tool, arguments)
        assert not result.is_error
        assert expected in result.content[0].text
        opened = (await client.call_tool("session_open", {})).structured_content
        again = await client.call_tool(tool, {**arguments, "session": opened["session"]})
        assert expected in again.content[0].text

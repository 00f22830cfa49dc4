"""The official MCP Python SDK (2.3.x) against `bulkhead stdio --wrap -- ...`: real stdio servers
from the registries (mcp-server-time from PyPI, server-everything from npm) and the probe server
in its strict single-era modes, each reached by a 2026-07-28 client (default mode) and a legacy
client (mode="legacy"). The registry servers are installed by scripts/wrap-servers (scripts/test
runs it first); a missing one fails the test, never skips it."""

import json
import pathlib

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
    server = wrapped(bulkhead_bin, "node", installed(EVERYTHING), allow=(str(NODE_MODULES),))
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

"""The official MCP Python SDK (2.3.x) against `bulkhead stdio`, in its default mode (which
probes `server/discover` and speaks 2026-07-28) and in `mode="legacy"` (initialize)."""

import pytest
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.anyio


def params(bulkhead_bin: str, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(command=bulkhead_bin, args=["stdio", *extra])


@pytest.mark.parametrize(
    ("mode", "expected_version"),
    [("auto", "2026-07-28"), ("legacy", "2025-11-25")],
)
async def test_discover_or_initialize_list_and_call_with_and_without_session(bulkhead_bin, mode, expected_version):
    async with Client(params(bulkhead_bin), mode=mode) as client:
        assert client.protocol_version == expected_version
        assert client.server_info is not None and client.server_info.name == "bulkhead"

        listed = await client.list_tools()
        names = [tool.name for tool in listed.tools]
        assert names == sorted(names)
        assert {"echo", "session_open", "session_close", "session_info"} <= set(names)
        for tool in listed.tools:
            session = tool.input_schema["properties"]["session"]
            assert session["x-mcp-header"] == "Session"

        default = await client.call_tool("echo", {"text": "from the default session"})
        assert not default.is_error
        assert default.structured_content == {"text": "from the default session"}

        opened = await client.call_tool("session_open", {})
        handle = opened.structured_content["session"]
        explicit = await client.call_tool("echo", {"text": "explicit", "session": handle})
        assert explicit.structured_content == {"text": "explicit"}

        info = (await client.call_tool("session_info", {"session": handle})).structured_content
        default_info = (await client.call_tool("session_info", {})).structured_content
        assert info["session"] == handle
        assert info["pid"] == opened.structured_content["pid"]
        assert default_info["session"] != handle
        assert default_info["pid"] != info["pid"]

        closed = await client.call_tool("session_close", {"session": handle})
        assert closed.structured_content == {"session": handle, "closed": True}


async def test_modern_pin_skips_the_probe(bulkhead_bin):
    async with Client(params(bulkhead_bin), mode="2026-07-28") as client:
        result = await client.call_tool("echo", {"text": "pinned"})
        assert result.structured_content == {"text": "pinned"}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_unknown_handle_is_a_clear_error_and_the_connection_survives(bulkhead_bin, mode):
    from mcp.shared.exceptions import MCPError

    async with Client(params(bulkhead_bin), mode=mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("echo", {"text": "x", "session": "local.0123456789abcdef0123456789abcdef"})
        assert "unknown session" in str(raised.value)
        ok = await client.call_tool("echo", {"text": "still fine"})
        assert ok.structured_content == {"text": "still fine"}

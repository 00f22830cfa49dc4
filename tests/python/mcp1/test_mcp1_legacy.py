"""The 1.x Python SDK (legacy lifecycle only) against `bulkhead stdio`."""

import os
import pathlib

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO = pathlib.Path(__file__).resolve().parents[3]
BULKHEAD = os.environ.get("BULKHEAD_BIN", str(REPO / "target" / "debug" / "bulkhead"))


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_mcp1_initialize_list_and_call_in_two_sessions():
    params = StdioServerParameters(command=BULKHEAD, args=["stdio"])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.serverInfo.name == "bulkhead"
            tools = await session.list_tools()
            assert "session_open" in [tool.name for tool in tools.tools]
            opened = await session.call_tool("session_open", {})
            handle = opened.structuredContent["session"]
            echoed = await session.call_tool("echo", {"text": "mcp 1.x", "session": handle})
            assert echoed.structuredContent == {"text": "mcp 1.x"}
            default = await session.call_tool("session_info", {})
            assert default.structuredContent["session"] != handle

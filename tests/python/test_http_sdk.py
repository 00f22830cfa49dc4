"""The official Python SDK over Streamable HTTP, in its default (2026-07-28) and legacy
modes, calling the broker tools through `bulkhead serve`."""

from decimal import Decimal

import pytest
from mcp import Client

from http_server import bulkhead_serve

pytestmark = pytest.mark.anyio


async def call(client, name, **arguments):
    result = await client.call_tool(name, arguments)
    assert not result.is_error, f"{name}: {result.content}"
    return result.structured_content


@pytest.mark.parametrize(("mode", "version"), [("auto", "2026-07-28"), ("legacy", "2025-11-25")])
async def test_trading_over_http(bulkhead_bin, mode, version):
    with bulkhead_serve(bulkhead_bin, "--no-auth") as url:
        async with Client(url, mode=mode) as client:
            assert client.protocol_version == version
            names = [tool.name for tool in (await client.list_tools()).tools]
            assert {"quote", "order_place", "session_open"} <= set(names)

            await call(client, "broker_login", broker="paper", api_key="k", api_secret="s")
            bought = (await call(client, "order_place", symbol="SOL-USD", side="buy", qty="2", type="market"))["order"]
            account = await call(client, "account")
            expected = Decimal("100000.00") - 2 * Decimal(bought["avg_fill_price"])
            assert Decimal(account["cash"]) == expected

            opened = await call(client, "session_open")
            other = opened["session"]
            empty = await client.call_tool("positions", {"session": other})
            assert empty.is_error, "a fresh session is not logged in"
            mine = await call(client, "positions")
            assert mine["positions"][0]["symbol"] == "SOL-USD"
            await call(client, "session_close", session=other)

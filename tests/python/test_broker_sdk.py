"""A real client (the official Python SDK, default 2026-07-28 mode) trades on the paper broker:
log in, quote, buy, check positions, sell, and read an account balance right to the cent."""

from decimal import Decimal

import pytest
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.anyio

STARTING_CASH = Decimal("100000.00")


async def call(client, name, **arguments):
    result = await client.call_tool(name, arguments)
    assert not result.is_error, f"{name}: {result.content}"
    return result.structured_content


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_login_quote_buy_positions_sell_account_to_the_cent(bulkhead_bin, mode):
    params = StdioServerParameters(command=bulkhead_bin, args=["stdio"])
    async with Client(params, mode=mode) as client:
        await call(client, "broker_login", broker="paper", api_key="demo", api_secret="demo-secret")
        quote = await call(client, "quote", symbol="SOL-USD")
        assert Decimal(quote["bid"]) < Decimal(quote["ask"])

        buy = (await call(client, "order_place", symbol="SOL-USD", side="buy", qty="7", type="market"))["order"]
        assert buy["status"] == "filled"
        bought_at = Decimal(buy["avg_fill_price"])

        positions = (await call(client, "positions"))["positions"]
        assert [(p["symbol"], Decimal(p["qty"]), Decimal(p["avg_price"])) for p in positions] == [
            ("SOL-USD", Decimal(7), bought_at)
        ]

        sell = (await call(client, "order_place", symbol="SOL-USD", side="sell", qty="3", type="market"))["order"]
        sold_at = Decimal(sell["avg_fill_price"])
        account = await call(client, "account")
        expected_cash = STARTING_CASH - 7 * bought_at + 3 * sold_at
        assert Decimal(account["cash"]) == expected_cash.quantize(Decimal("0.01"))
        assert account["currency"] == "USD"

        positions = (await call(client, "positions"))["positions"]
        assert Decimal(positions[0]["qty"]) == 4
        assert Decimal(positions[0]["avg_price"]) == bought_at

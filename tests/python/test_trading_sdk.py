"""A real client (the official Python SDK, in its 2026-07-28 and legacy modes) uses the order
lifecycle on the paper broker — a bracket order followed with order_get to its fill, a partial
position_close, the kill switch — meets the operator's rails, and confirms (or does not
confirm) live orders through its elicitation callback."""

from decimal import Decimal

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.anyio

MODES = ["auto", "legacy"]
LIVE = ["--test-tools", "--allow-live-broker", "paper-live", "--max-order-notional", "100000"]


async def call(client, name, **arguments):
    result = await client.call_tool(name, arguments)
    assert not result.is_error, f"{name}: {result.content}"
    return result.structured_content


async def refused(client, name, **arguments):
    result = await client.call_tool(name, arguments)
    assert result.is_error, f"{name} should have been refused: {result.structured_content}"
    return result.structured_content["error"]["kind"], result.content[0].text


def stdio(bulkhead_bin, *args):
    return StdioServerParameters(command=bulkhead_bin, args=["stdio", *args])


@pytest.mark.parametrize("mode", MODES)
async def test_bracket_order_followed_to_its_fill_then_a_partial_close(bulkhead_bin, mode):
    async with Client(stdio(bulkhead_bin), mode=mode) as client:
        await call(client, "broker_login", broker="paper", api_key="demo", api_secret="demo-secret")
        ask = Decimal((await call(client, "quote", symbol="BTC-USD"))["ask"])
        placed = await call(
            client,
            "order_place",
            symbol="BTC-USD",
            side="buy",
            qty="0.02",
            take_profit_price=str((ask * Decimal("1.3")).quantize(Decimal("0.01"))),
            stop_loss_price=str((ask * Decimal("0.7")).quantize(Decimal("0.01"))),
        )
        client_order_id = placed["client_order_id"]
        assert client_order_id.startswith("bh-"), "a generated id, always returned"
        assert placed["order"]["order_class"] == "bracket"

        for _ in range(50):
            order = (await call(client, "order_get", client_order_id=client_order_id))["order"]
            if order["status"] == "filled":
                break
        assert order["status"] == "filled"
        assert Decimal(order["filled_qty"]) == Decimal("0.02")
        assert [leg["status"] for leg in order["legs"]] == ["open", "open"]

        cancelled = await call(client, "orders_cancel_all", symbol="BTC-USD")
        assert cancelled["count"] == 2, "the kill switch cancels both legs"
        closed = await call(client, "position_close", symbol="BTC-USD", percent=50)
        assert Decimal(closed["order"]["filled_qty"]) == Decimal("0.01")
        positions = (await call(client, "positions"))["positions"]
        assert [(p["symbol"], Decimal(p["qty"])) for p in positions] == [("BTC-USD", Decimal("0.01"))]

        clocks = (await call(client, "market_clock"))["clocks"]
        assert {clock["market"] for clock in clocks} == {"us_equity", "crypto", "nse_equity"}
        bars = (await call(client, "bars", symbol="ETH-USD", timeframe="5m", limit=3))["bars"]
        assert len(bars) == 3
        assert (await call(client, "symbols", query="sol"))["symbols"][0]["fractionable"] is True


@pytest.mark.parametrize("mode", MODES)
async def test_the_rails_refuse_a_large_order_and_a_dry_run_places_nothing(bulkhead_bin, mode):
    params = stdio(bulkhead_bin, "--max-order-notional", "1000")
    async with Client(params, mode=mode) as client:
        await call(client, "broker_login", broker="paper", api_key="demo", api_secret="demo-secret")
        kind, text = await refused(client, "order_place", symbol="ETH-USD", side="buy", qty="1")
        assert kind == "max_order_notional"
        assert "over your max_order_notional of 1000 USD" in text
        preview = await call(client, "order_place", symbol="SOL-USD", side="buy", qty="2", dry_run=True)
        assert preview["dry_run"] is True
        assert Decimal(preview["buying_power_after"]) == Decimal("100000.00") - Decimal(preview["estimated_notional"])
        assert (await call(client, "orders"))["orders"] == []


async def confirm(context, params):
    assert "LIVE (real money) order on paper-live" in params.message
    return types.ElicitResult(action="accept", content={"confirm": True})


async def decline(context, params):
    return types.ElicitResult(action="decline")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("callback", "placed"), [(confirm, True), (decline, False), (None, False)])
async def test_a_live_order_needs_the_users_confirmation(bulkhead_bin, mode, callback, placed):
    async with Client(stdio(bulkhead_bin, *LIVE), mode=mode, elicitation_callback=callback) as client:
        brokers = {broker["name"]: broker for broker in (await call(client, "broker_list"))["brokers"]}
        assert brokers["paper-live"]["environment"] == "live"
        await call(client, "broker_login", broker="paper-live", api_key="demo", api_secret="demo-secret")
        result = await client.call_tool("order_place", {"broker": "paper-live", "symbol": "SOL-USD", "side": "buy", "qty": "1"})
        orders = (await call(client, "orders", broker="paper-live"))["orders"]
        if placed:
            assert not result.is_error, result.content
            assert result.structured_content["order"]["status"] == "filled"
            assert len(orders) == 1
        else:
            assert result.is_error
            assert result.structured_content["error"]["kind"] == "not_confirmed"
            assert orders == []


def http_client_for(url, token):
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {"Authorization": f"Bearer {token}"}
    return streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))


@pytest.mark.parametrize("mode", MODES)
async def test_each_principal_gets_its_own_rails_over_http(bulkhead_bin, mode, tmp_path):
    from http_server import bulkhead_serve

    tokens = tmp_path / "tokens"
    tokens.write_text("alice:alice-token-0123456789\nbob:bob-token-0123456789\n")
    args = [
        "--tokens", str(tokens), "--test-tools",
        "--principal-rail", "alice:max_order_notional=100",
        "--principal-rail", "alice:allow_live_brokers=paper-live",
    ]
    with bulkhead_serve(bulkhead_bin, *args) as url:
        alice = Client(http_client_for(url, "alice-token-0123456789"), mode=mode, elicitation_callback=confirm)
        async with alice as client:
            names = [broker["name"] for broker in (await call(client, "broker_list"))["brokers"]]
            assert names == ["alpaca-paper", "paper", "paper-live"], "alice may trade live, with a cap"
            await call(client, "broker_login", broker="paper-live", api_key="k", api_secret="s")
            kind, text = await refused(client, "order_place", broker="paper-live", symbol="SOL-USD", side="buy", qty="2")
            assert kind == "max_order_notional" and "of 100 USD" in text
            placed = await call(client, "order_place", broker="paper-live", symbol="SOL-USD", side="buy", qty="0.5")
            assert placed["environment"] == "live" and placed["order"]["status"] == "filled"
        async with Client(http_client_for(url, "bob-token-0123456789"), mode=mode) as client:
            names = [broker["name"] for broker in (await call(client, "broker_list"))["brokers"]]
            assert names == ["alpaca-paper", "paper"], "bob sees no live broker (alpaca-paper is always listed)"
            await call(client, "broker_login", broker="paper", api_key="k", api_secret="s")
            big = await call(client, "order_place", symbol="SOL-USD", side="buy", qty="2")
            assert big["order"]["status"] == "filled", "bob has no cap"

"""A real client (the official Python SDK) trades on alpaca-paper, pointed at the loopback Alpaca
stand-in (the paper engine behind Alpaca's API, `alpaca-standin`): it logs in with an
operator-provisioned credential_ref, places a bracket order, follows it with order_get to a fill,
and closes the position."""

import asyncio
import os
import pathlib
import stat
import subprocess
from decimal import Decimal

import pytest
from mcp import Client, StdioServerParameters

from conftest import REPO

pytestmark = pytest.mark.anyio

KEY = "PKSDKTEST0001"
SECRET = "sdk-secret-4b1d-do-not-leak"
SYMBOL = "BTC/USD"
FILL_TIMEOUT_SECS = 10


@pytest.fixture
def standin():
    path = pathlib.Path(os.environ.get("ALPACA_STANDIN_BIN", REPO / "target" / "debug" / "alpaca-standin"))
    assert path.is_file(), f"{path} is missing: run `cargo build --workspace` first"
    process = subprocess.Popen(
        [str(path), f"{KEY}:{SECRET}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        process.stdin.close()
        process.wait(timeout=5)


@pytest.fixture
def credentials_dir(tmp_path):
    directory = tmp_path / "credentials"
    directory.mkdir(mode=0o700)
    credential = directory / "local.alpaca"
    credential.write_text(f"broker = alpaca-paper\napi_key = {KEY}\napi_secret = {SECRET}\n")
    credential.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return directory


async def call(client, name, **arguments):
    result = await client.call_tool(name, arguments)
    assert not result.is_error, f"{name}: {result.content}"
    return result.structured_content


async def test_bracket_order_to_a_fill_and_closing_the_position(bulkhead_bin, standin, credentials_dir):
    params = StdioServerParameters(
        command=bulkhead_bin,
        args=[
            "stdio",
            "--credentials-dir", str(credentials_dir),
            f"--broker-url=alpaca-paper.trading={standin}",
            f"--broker-url=alpaca-paper.data={standin}",
        ],
    )
    async with Client(params) as client:
        login = await call(client, "broker_login", broker="alpaca-paper", credential_ref="alpaca")
        assert login["authenticated"] is True
        await call(client, "broker_use", broker="alpaca-paper")

        quote = await call(client, "quote", symbol=SYMBOL)
        ask = Decimal(quote["ask"])
        placed = await call(
            client, "order_place", symbol=SYMBOL, side="buy", qty="0.01", type="market",
            time_in_force="gtc",
            take_profit_price=str((ask * Decimal("1.05")).quantize(Decimal("0.01"))),
            stop_loss_price=str((ask * Decimal("0.95")).quantize(Decimal("0.01"))),
        )
        order = placed["order"]
        assert order["order_class"] == "bracket"

        deadline = asyncio.get_running_loop().time() + FILL_TIMEOUT_SECS
        while order["status"] != "filled":
            assert asyncio.get_running_loop().time() < deadline, f"never filled: {order}"
            await asyncio.sleep(0.2)
            order = (await call(client, "order_get", order_id=order["order_id"]))["order"]
        assert Decimal(order["filled_qty"]) == Decimal("0.01")
        assert len(order["legs"]) == 2, order

        positions = (await call(client, "positions"))["positions"]
        assert [(p["symbol"], Decimal(p["qty"])) for p in positions] == [(SYMBOL, Decimal("0.01"))]

        # The exits hold the position; cancel them, then close it.
        await call(client, "orders_cancel_all", symbol=SYMBOL)
        closed = await call(client, "position_close", symbol=SYMBOL)
        assert closed["order"]["side"] == "sell"
        assert (await call(client, "positions"))["positions"] == []

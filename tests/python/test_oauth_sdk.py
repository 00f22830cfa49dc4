"""The official Python SDK's OAuth client against `bulkhead serve` as a resource server and a
real authorization server (oidc-provider): given only the server URL and its client
registration, the SDK follows the 401 challenge to the protected-resource metadata, discovers
the authorization server, gets a token for Bulkhead's resource and calls tools — in the
2026-07-28 and legacy modes, by client credentials (with a step-up to the `trade` scope when a
tool needs it) and by authorization code with PKCE through a scripted browser."""

import json
import os
import pathlib
import tempfile
import urllib.parse
import urllib.request

import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata

from http_server import bulkhead_serve
from oauth_provider import free_loopback_port, oidc_provider

pytestmark = pytest.mark.anyio

ADMIN_TOKEN = "admin-token-0123456789abcdef"
REDIRECT_URI = "http://127.0.0.1/callback"


class MemoryStorage:
    """Tokens and client registration kept in memory, as the SDK's TokenStorage protocol asks."""

    def __init__(self, client_info=None):
        self.tokens = None
        self.client_info = client_info

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


@pytest.fixture
def resource_server(bulkhead_bin):
    """A provider and a `bulkhead serve` trusting it (label `t`, scope `mcp` required, `trade`
    for order_place); yields (issuer, MCP URL)."""
    with oidc_provider() as issuer, tempfile.TemporaryDirectory() as scratch:
        admin = pathlib.Path(scratch) / "admin-token"
        admin.write_text(ADMIN_TOKEN)
        port = free_loopback_port()
        url = f"http://127.0.0.1:{port}/mcp"
        with bulkhead_serve(
            bulkhead_bin,
            "--public-url", url,
            "--oauth-issuer", f"t={issuer}",
            "--oauth-scope", "mcp",
            "--oauth-tool-scope", "order_place=trade",
            "--admin-token-file", str(admin),
            listen=f"127.0.0.1:{port}",
        ) as served:
            assert served == url
            yield issuer, url


def principals(url):
    """The principals of the open sessions, from the admin API."""
    request = urllib.request.Request(
        url.replace("/mcp", "/admin/sessions"), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request) as response:
        return {session["principal"] for session in json.load(response)["sessions"]}


async def call(client, name, **arguments):
    result = await client.call_tool(name, arguments)
    assert not result.is_error, f"{name}: {result.content}"
    return result.structured_content


@pytest.mark.parametrize(("mode", "version"), [("auto", "2026-07-28"), ("legacy", "2025-11-25")])
async def test_client_credentials_from_the_challenge_to_a_trade(resource_server, mode, version):
    issuer, url = resource_server
    storage = MemoryStorage()
    auth = ClientCredentialsOAuthProvider(
        server_url=url,
        storage=storage,
        client_id="alice",
        client_secret="alice-secret-0123456789",
        token_endpoint_auth_method="client_secret_post",
        issuer=issuer,
    )
    async with create_mcp_http_client(auth=auth) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            assert client.protocol_version == version
            # The challenge asked for `mcp` only: the first token carries just that.
            assert storage.tokens.scope == "mcp"
            await call(client, "broker_login", broker="paper", api_key="k", api_secret="s")
            assert (await call(client, "quote", symbol="AAPL"))["symbol"] == "AAPL"
            # order_place needs `trade`: a 403 insufficient_scope, the SDK steps up, the call succeeds.
            # Crypto trades around the clock, so the market order fills whatever the hour.
            order = await call(
                client, "order_place", symbol="BTC-USD", side="buy", qty="0.01", type="market"
            )
            assert order["order"]["status"] == "filled"
            assert set(storage.tokens.scope.split()) == {"mcp", "trade"}
            assert principals(url) == {"t_alice"}


async def browser(authorization_url: str, login: str) -> AuthorizationCodeResult:
    """What a person does in a browser: sign in at the provider's login page, consent, and be
    redirected back with a code. oidc-provider's development pages accept any login."""
    async with httpx2.AsyncClient() as agent:
        location = authorization_url
        for _ in range(20):
            if location.startswith(REDIRECT_URI):
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
                assert "code" in query, f"the provider refused: {query}"
                return AuthorizationCodeResult(
                    code=query["code"][0], state=query["state"][0], iss=query.get("iss", [None])[0]
                )
            response = await agent.get(location)
            if response.status_code in (302, 303):
                location = urllib.parse.urljoin(location, response.headers["location"])
                continue
            assert response.status_code == 200, f"{location}: {response.status_code} {response.text}"
            prompt = "login" if 'name="login"' in response.text else "consent"
            form = {"prompt": prompt, "login": login, "password": "anything"} if prompt == "login" else {"prompt": prompt}
            submitted = await agent.post(location, data=form)
            assert submitted.status_code in (302, 303), f"{prompt}: {submitted.status_code} {submitted.text}"
            location = urllib.parse.urljoin(location, submitted.headers["location"])
    raise AssertionError("the authorization flow did not come back to the redirect URI")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_authorization_code_with_pkce_names_the_signed_in_user(resource_server, mode):
    issuer, url = resource_server
    pending = {}

    async def redirect_handler(authorization_url: str) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorization_url).query)
        # RFC 8707 and PKCE, as the MCP specification requires of the client.
        assert query["resource"] == [url]
        assert query["code_challenge_method"] == ["S256"]
        pending["result"] = await browser(authorization_url, "ann@example.com")

    async def callback_handler() -> AuthorizationCodeResult:
        return pending.pop("result")

    registration = OAuthClientInformationFull(
        client_id="browser",
        redirect_uris=[REDIRECT_URI],
        token_endpoint_auth_method="none",
        grant_types=["authorization_code"],
        response_types=["code"],
    )
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[REDIRECT_URI],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code"],
            response_types=["code"],
        ),
        storage=MemoryStorage(registration),
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with create_mcp_http_client(auth=auth) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            opened = await call(client, "session_open")
            assert (await call(client, "echo", text="hi", session=opened["session"]))["text"] == "hi"
            # The subject `ann@example.com` of issuer `t`, escaped into a file-name-safe principal.
            assert principals(url) == {"t_ann_40example_2Ecom"}
            await call(client, "session_close", session=opened["session"])

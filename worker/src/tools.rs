//! The tools one session's worker serves: the broker tools, the worker's half of
//! `session_info`, and diagnostics.
//!
//! The supervisor owns `session_open` / `session_close`, the `session` argument, and the
//! session fields of `session_info`; it asks this worker's `session_info` for the broker state
//! and merges the two. Everything here runs inside one session's process and sees only that
//! session's state. Test-only diagnostics are compiled in but listed and callable only when the
//! supervisor's hello asks for them (`bulkhead --test-tools`).

use std::sync::Arc;
use std::time::Duration;

use bulkhead_protocol::META_RESOLVED_CREDENTIAL;
use bulkhead_protocol::brokers::{ALPACA_LIVE, NetworkBroker};
use bulkhead_protocol::trading::TradingPolicy;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{InputResponses, RequestState};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult, ContentBlock,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::attachments::{self, LogLevel};
use crate::broker::BrokerRegistry;
use crate::broker::alpaca::AlpacaBroker;
use crate::broker::confirm::ConfirmChannel;
use crate::broker::credentials::UnavailableResolver;
use crate::broker::desk::PeerDesk;
use crate::broker::paper::PaperConfig;
use crate::broker::tools::descriptions as describe;
use crate::broker::tools::{
    BarsArgs, BrokerArgs, BrokerNameArgs, BrokerTools, IndicatorArgs, LoginArgs, MarketClockArgs,
    OrderCancelArgs, OrderGetArgs, OrderPlaceArgs, OrderReplaceArgs, OrdersArgs,
    OrdersCancelAllArgs, PositionCloseArgs, QuoteArgs, SymbolsArgs, TradeContext,
};
use crate::probes;

/// Longest delay `echo` accepts: ten minutes, longer than any sensible call deadline.
const MAX_ECHO_DELAY_MS: u64 = 600_000;

/// Tools that exist only for the test suite.
const TEST_TOOLS: [&str; 6] = [
    "hang_uncancellable",
    "attempt_forbidden_syscall",
    "memory_hog",
    "fork_bomb",
    "read_file",
    "connect_tcp",
];

/// The MCP server of one session.
#[derive(Clone)]
pub struct SessionServer {
    tool_router: ToolRouter<Self>,
    broker: BrokerTools,
    /// The level an older-era client chose with `logging/setLevel`.
    log_level: LogLevel,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// Text to send back.
    pub text: String,
    /// Wait this many milliseconds before answering (honours cancellation).
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct HangArgs {
    /// How long to block the worker, ignoring cancellation.
    pub ms: u64,
}

/// A credential the supervisor resolved from a `credential_ref`, as it arrives in `_meta`.
#[derive(Deserialize)]
struct ResolvedCredential {
    api_key: SecretString,
    api_secret: SecretString,
}

#[tool_router]
impl SessionServer {
    /// The server of one session: `paper`, the network brokers of the hello (`alpaca`, with
    /// real money, only when `trading` lists it), whose requests answer within `call_deadline`.
    pub fn new(
        test_tools: bool,
        paper_seed: Option<u64>,
        trading: &TradingPolicy,
        network_brokers: &[NetworkBroker],
        call_deadline: Duration,
    ) -> Self {
        let mut tool_router = Self::tool_router();
        if !test_tools {
            for name in TEST_TOOLS {
                tool_router.remove_route(name);
            }
        }
        let mut paper = PaperConfig::default();
        if let Some(seed) = paper_seed {
            paper.seed = seed;
        }
        // `credential_ref` is resolved by the supervisor, which passes the secret in the
        // request's `_meta` (see `broker_login`); the registry's own resolver is never reached
        // for a reference the supervisor could resolve.
        let resolver = Arc::new(UnavailableResolver);
        let mut registry = BrokerRegistry::for_session(paper, trading, test_tools, resolver);
        let live_enabled = |name: &str| trading.live_brokers.iter().any(|live| live == name);
        for endpoints in network_brokers {
            if endpoints.name == ALPACA_LIVE && !live_enabled(ALPACA_LIVE) {
                continue;
            }
            match AlpacaBroker::new(endpoints, call_deadline) {
                Ok(broker) => registry.add(Box::new(broker)),
                Err(error) => tracing::error!(%error, "broker left out of this session"),
            }
        }
        Self {
            tool_router,
            broker: BrokerTools::new(registry, trading.rails.clone()),
            log_level: LogLevel::default(),
        }
    }

    /// Tells a client that wants log messages what became of an order (its result's sentence).
    async fn log_outcome(&self, context: &RequestContext<RoleServer>, response: &CallToolResponse) {
        if let CallToolResponse::Complete(result) = response
            && let Some(text) = result.content.first().and_then(|block| block.as_text())
        {
            attachments::log(&self.log_level, context, &text.text).await;
        }
    }

    /// Log out of every broker and wipe the credentials: the session is ending.
    pub async fn end_session(&self) {
        self.broker.end_session().await;
    }

    #[tool(description = describe::BROKER_LIST, annotations(read_only_hint = true, open_world_hint = false))]
    async fn broker_list(&self) -> Result<CallToolResult, ErrorData> {
        Ok(self.broker.broker_list().await)
    }

    #[tool(description = describe::BROKER_LOGIN, annotations(destructive_hint = false, open_world_hint = true))]
    async fn broker_login(
        &self,
        Parameters(mut args): Parameters<LoginArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if args.credential_ref.is_some()
            && let Some(resolved) = context.meta.get(META_RESOLVED_CREDENTIAL)
            && let Ok(resolved) = ResolvedCredential::deserialize(resolved)
        {
            args.credential_ref = None;
            args.api_key = Some(resolved.api_key);
            args.api_secret = Some(resolved.api_secret);
        }
        Ok(self.broker.broker_login(args).await)
    }

    #[tool(description = describe::BROKER_LOGOUT, annotations(destructive_hint = false, idempotent_hint = true, open_world_hint = false))]
    async fn broker_logout(
        &self,
        Parameters(args): Parameters<BrokerNameArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.broker.broker_logout(args).await)
    }

    #[tool(description = describe::BROKER_USE, annotations(destructive_hint = false, idempotent_hint = true, open_world_hint = false))]
    async fn broker_use(
        &self,
        Parameters(args): Parameters<BrokerNameArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.broker.broker_use(args).await)
    }

    #[tool(description = describe::QUOTE, annotations(read_only_hint = true, open_world_hint = true))]
    async fn quote(
        &self,
        Parameters(args): Parameters<QuoteArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.broker.quote(args).await)
    }

    #[tool(description = describe::ACCOUNT, annotations(read_only_hint = true, open_world_hint = true))]
    async fn account(
        &self,
        Parameters(args): Parameters<BrokerArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.broker.account(args).await)
    }

    #[tool(description = describe::POSITIONS, annotations(read_only_hint = true, open_world_hint = true))]
    async fn positions(
        &self,
        Parameters(args): Parameters<BrokerArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.broker.positions(args).await)
    }

    #[tool(description = describe::ORDERS, annotations(read_only_hint = true, open_world_hint = true))]
    async fn orders(
        &self,
        Parameters(args): Parameters<OrdersArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.broker.orders(args).await)
    }

    #[tool(description = describe::ORDER_GET, annotations(read_only_hint = true, open_world_hint = true))]
    async fn order_get(
        &self,
        Parameters(args): Parameters<OrderGetArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.broker.order_get(args).await)
    }

    #[tool(description = describe::ORDER_PLACE, annotations(destructive_hint = true, idempotent_hint = true, open_world_hint = true))]
    async fn order_place(
        &self,
        Parameters(args): Parameters<OrderPlaceArgs>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let trade = trade_context(&context, responses, state);
        let response = self.broker.order_place(args, trade).await;
        self.log_outcome(&context, &response).await;
        Ok(response)
    }

    #[tool(description = describe::ORDER_REPLACE, annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = true))]
    async fn order_replace(
        &self,
        Parameters(args): Parameters<OrderReplaceArgs>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let trade = trade_context(&context, responses, state);
        let response = self.broker.order_replace(args, trade).await;
        self.log_outcome(&context, &response).await;
        Ok(response)
    }

    #[tool(description = describe::ORDER_CANCEL, annotations(destructive_hint = true, idempotent_hint = true, open_world_hint = true))]
    async fn order_cancel(
        &self,
        Parameters(args): Parameters<OrderCancelArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let desk = PeerDesk::new(context.peer.clone());
        let result = self.broker.order_cancel(args, &desk).await;
        self.log_outcome(&context, &CallToolResponse::Complete(result.clone()))
            .await;
        Ok(result)
    }

    #[tool(description = describe::ORDERS_CANCEL_ALL, annotations(destructive_hint = true, idempotent_hint = true, open_world_hint = true))]
    async fn orders_cancel_all(
        &self,
        Parameters(args): Parameters<OrdersCancelAllArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let desk = PeerDesk::new(context.peer.clone());
        let result = self.broker.orders_cancel_all(args, &desk).await;
        self.log_outcome(&context, &CallToolResponse::Complete(result.clone()))
            .await;
        Ok(result)
    }

    #[tool(description = describe::POSITION_CLOSE, annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = true))]
    async fn position_close(
        &self,
        Parameters(args): Parameters<PositionCloseArgs>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let trade = trade_context(&context, responses, state);
        let response = self.broker.position_close(args, trade).await;
        self.log_outcome(&context, &response).await;
        Ok(response)
    }

    #[tool(description = describe::BARS, annotations(read_only_hint = true, open_world_hint = true))]
    async fn bars(
        &self,
        Parameters(args): Parameters<BarsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.broker.bars(args).await)
    }

    #[tool(description = describe::MARKET_CLOCK, annotations(read_only_hint = true, open_world_hint = true))]
    async fn market_clock(
        &self,
        Parameters(args): Parameters<MarketClockArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.broker.market_clock(args).await)
    }

    #[tool(description = describe::SYMBOLS, annotations(read_only_hint = true, open_world_hint = true))]
    async fn symbols(
        &self,
        Parameters(args): Parameters<SymbolsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.broker.symbols(args).await)
    }

    #[tool(description = describe::INDICATOR, annotations(read_only_hint = true, open_world_hint = true))]
    async fn indicator(
        &self,
        Parameters(args): Parameters<IndicatorArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.broker.indicator(args).await)
    }

    /// The worker's half of `session_info`; the supervisor merges it with the session fields.
    #[tool(
        description = "This session's worker: its pid, the active broker and the brokers it is logged in to.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn session_info(&self) -> Result<CallToolResult, ErrorData> {
        let mut state = self.broker.session_state().await;
        state["pid"] = json!(std::process::id());
        let text = format!(
            "active broker: {}",
            state["active_broker"].as_str().unwrap_or("none")
        );
        let mut result = CallToolResult::structured(state);
        result.content = vec![ContentBlock::text(text)];
        Ok(result)
    }

    /// Diagnostic: return `text` unchanged, optionally after `delay_ms`.
    #[tool(
        description = "Diagnostic: returns `text` unchanged, after `delay_ms` milliseconds if given. Useful to check that a session answers.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn echo(
        &self,
        Parameters(args): Parameters<EchoArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(delay_ms) = args.delay_ms {
            if delay_ms > MAX_ECHO_DELAY_MS {
                return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "delay_ms must be at most {MAX_ECHO_DELAY_MS}"
                ))]));
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
                () = context.ct.cancelled() => {
                    return Err(ErrorData::internal_error("echo cancelled", None));
                }
            }
        }
        let mut result = CallToolResult::structured(json!({ "text": args.text }));
        result.content = vec![ContentBlock::text(args.text)];
        Ok(result)
    }

    /// Test-only: block the whole worker, ignoring cancellation, to exercise the hard kill.
    #[tool(
        description = "Test only: blocks this session's worker for `ms` milliseconds and ignores cancellation."
    )]
    async fn hang_uncancellable(&self, Parameters(args): Parameters<HangArgs>) -> String {
        // Deliberately blocks the current-thread runtime: nothing in this worker runs meanwhile,
        // so it cannot notice a cancellation.
        std::thread::sleep(Duration::from_millis(args.ms));
        "done".to_string()
    }

    /// Test-only: make a system call the sandbox forbids; the worker should be killed.
    #[tool(
        description = "Test only: makes a system call the worker's sandbox forbids (default ptrace). The sandbox kills the worker; an answer means it did not."
    )]
    async fn attempt_forbidden_syscall(
        &self,
        Parameters(args): Parameters<probes::ForbiddenSyscallArgs>,
    ) -> CallToolResult {
        let outcome = probes::attempt_forbidden_syscall(&args);
        // clone3 is answered with ENOSYS by design; everything else should never return.
        if matches!(args.syscall, probes::ForbiddenSyscall::Clone3) {
            CallToolResult::success(vec![ContentBlock::text(outcome)])
        } else {
            CallToolResult::error(vec![ContentBlock::text(format!(
                "{outcome}: the sandbox let this worker live"
            ))])
        }
    }

    /// Test-only: allocate until the memory limit stops it.
    #[tool(
        description = "Test only: allocates and touches `mb` MiB until the worker's memory limit stops it, then frees it and reports how far it got."
    )]
    async fn memory_hog(
        &self,
        Parameters(args): Parameters<probes::MemoryHogArgs>,
    ) -> CallToolResult {
        CallToolResult::structured(probes::memory_hog(&args))
    }

    /// Test-only: try to create processes.
    #[tool(
        description = "Test only: tries to fork `count` children (at most 256) and reports how many it created."
    )]
    async fn fork_bomb(
        &self,
        Parameters(args): Parameters<probes::ForkBombArgs>,
    ) -> CallToolResult {
        CallToolResult::structured(probes::fork_bomb(&args))
    }

    /// Test-only: open a TCP connection, to probe which ports the worker can reach.
    #[tool(
        description = "Test only: opens a TCP connection to `addr` (IP:PORT) and closes it, or returns the error."
    )]
    async fn connect_tcp(
        &self,
        Parameters(args): Parameters<probes::ConnectTcpArgs>,
    ) -> CallToolResult {
        match probes::connect_tcp(&args) {
            Ok(outcome) => CallToolResult::success(vec![ContentBlock::text(outcome)]),
            Err(reason) => CallToolResult::error(vec![ContentBlock::text(reason)]),
        }
    }

    /// Test-only: read a file, to probe what the worker can reach.
    #[tool(
        description = "Test only: reads the start of the file at `path` and returns it as text, or the error."
    )]
    async fn read_file(
        &self,
        Parameters(args): Parameters<probes::ReadFileArgs>,
    ) -> CallToolResult {
        match probes::read_file(&args) {
            Ok(content) => CallToolResult::success(vec![ContentBlock::text(content)]),
            Err(reason) => CallToolResult::error(vec![ContentBlock::text(reason)]),
        }
    }
}

/// Where a trading call's orders are announced (the supervisor) and how a live order is
/// confirmed: an elicitation request for older protocols, an input-required result for
/// 2026-07-28 requests (whose `_meta` says whether the client can elicit).
fn trade_context(
    context: &RequestContext<RoleServer>,
    responses: Option<rmcp::model::InputResponses>,
    state: Option<String>,
) -> TradeContext {
    let modern = context
        .protocol_version()
        .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28);
    let confirm = if modern {
        ConfirmChannel::InputRequired {
            client_can_elicit: context
                .client_capabilities()
                .is_some_and(|capabilities| capabilities.elicitation.is_some()),
            responses,
            state,
        }
    } else {
        ConfirmChannel::Elicit {
            peer: context.peer.clone(),
            cancelled: context.ct.clone(),
        }
    };
    TradeContext {
        desk: Arc::new(PeerDesk::new(context.peer.clone())),
        confirm,
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SessionServer {
    /// The same capabilities in both eras: no resource subscriptions (in 2026-07-28 they would
    /// promise `subscriptions/listen` deliveries), no list changes (the catalog is fixed).
    fn get_info(&self) -> ServerConfig {
        let capabilities = json!({
            "tools": {},
            "logging": {},
            "resources": {},
            "prompts": {},
            "completions": {},
        });
        let capabilities: ServerCapabilities =
            serde_json::from_value(capabilities).unwrap_or_default();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                "bulkhead-worker",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }

    #[allow(
        deprecated,
        reason = "logging is deprecated by SEP-2577 but served in every era we speak"
    )]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.log_level.set(request.level);
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let request = serde_json::to_value(&request).unwrap_or_default();
        attachments::complete(&self.broker, &request).await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        attachments::list_prompts()
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        attachments::get_prompt(&self.broker, &request.name, request.arguments.as_ref())
            .await
            .map(GetPromptResponse::Complete)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        attachments::list_resources()
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        attachments::list_resource_templates()
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        attachments::read_resource(&self.broker, &request.uri)
            .await
            .map(ReadResourceResponse::Complete)
    }
}

/// What the worker tells a client about itself (the supervisor adds its own about sessions).
const INSTRUCTIONS: &str = "A trading broker session: log in with broker_login, then use the \
    market data, account and order tools. broker_list says whether a broker is simulated, paper \
    or live (real money; every live order asks you to confirm). Your operator's trading rails \
    apply to every order; order_place with dry_run: true shows an order without placing it.";

//! The tools one session's worker serves.
//!
//! The supervisor owns the session tools (`session_open`, `session_close`, `session_info`) and
//! the `session` argument; everything here runs inside one session's process and sees only
//! that session's state. Test-only diagnostics are compiled in but listed and callable only
//! when the supervisor's hello asks for them (`bulkhead --test-tools`).

use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// Longest delay `echo` accepts: ten minutes, longer than any sensible call deadline.
const MAX_ECHO_DELAY_MS: u64 = 600_000;

/// Tools that exist only for the test suite.
const TEST_TOOLS: [&str; 1] = ["hang_uncancellable"];

/// The MCP server of one session.
#[derive(Clone)]
pub struct SessionServer {
    tool_router: ToolRouter<Self>,
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

#[tool_router]
impl SessionServer {
    pub fn new(test_tools: bool) -> Self {
        let mut tool_router = Self::tool_router();
        if !test_tools {
            for name in TEST_TOOLS {
                tool_router.remove_route(name);
            }
        }
        Self { tool_router }
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
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SessionServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("bulkhead-worker", env!("CARGO_PKG_VERSION")),
        )
    }
}

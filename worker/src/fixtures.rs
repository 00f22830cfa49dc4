//! Test-only conformance fixtures: the tools, prompts and resources that the server scenarios of
//! the official MCP conformance suite (npm `@modelcontextprotocol/conformance`, the 0.1.x
//! releases and the 0.2.0 pre-releases) call, with the names, contents and behaviour those
//! scenarios check (see `/work/notes/conformance.md` for the scenario-by-scenario list).
//!
//! The supervisor selects this module per worker: `bulkhead serve --test-fixtures` sets the
//! handshake's `hello.fixtures`, and such a worker serves [`FixtureServer`] instead of the
//! broker tools. Running the suite through the supervisor then shows that images, audio,
//! embedded resources, progress, logging, sampling, elicitation and input-required results
//! survive the relay. Nothing here is reachable otherwise.
//!
//! One handler serves both protocol eras, decided per request by the version the request's
//! `_meta` names (rmcp falls back to the version of the worker's own `initialize`):
//!
//! - 2026-07-28 and later: a tool, prompt or resource that needs something from the client
//!   answers with an input-required result (SEP-2322) listing `inputRequests` and an optional
//!   `requestState`; the client retries with `inputResponses`. Only capabilities declared in
//!   that request's `_meta` are asked for (otherwise `-32021`). Notifications obey the
//!   request's own opt-ins: progress only with a `progressToken`, log messages only with
//!   `io.modelcontextprotocol/logLevel`.
//! - Older versions: the same step functions run, but each input request is sent to the client
//!   as a real server-to-client request (`sampling/createMessage`, `elicitation/create`,
//!   `roots/list`) on the same connection, and the call completes once the client answered.
//!
//! `requestState` is sealed with an HMAC (rmcp's `RequestStateCodec`, feature `request-state`)
//! under a per-process key, bound to the fixture's name and valid for ten minutes; a value that
//! fails verification gets `-32602`. The module depends only on rmcp, serde_json and tokio, so
//! a probe binary can include it by path.

// Sampling, roots and logging are deprecated by SEP-2577, but they are exactly what the suite
// exercises.
#![allow(deprecated)]

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities,
    CompleteRequestParams, CompleteResult, ContentBlock, DiscoverResult, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, InputRequest, InputRequests,
    InputRequiredResult, InputResponses, JsonObject, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
    LoggingMessageNotificationParam, PaginatedRequestParams, ProgressNotificationParam,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    RequestStateCodec, SealOptions, ServerCapabilities, ServerConfig, ServerRequest,
    SetLevelRequestParams, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The implementation name the fixtures report.
pub const SERVER_NAME: &str = "bulkhead-conformance-fixtures";

/// A 1×1 red PNG, the suite's reference image.
const IMAGE_PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A minimal WAV file, the suite's reference audio clip.
const AUDIO_WAV_BASE64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// Pause between the notifications of the logging and progress fixtures (the suite's
/// scenarios ask for about 50 ms, so that several notifications arrive during one call).
const STEP_DELAY: Duration = Duration::from_millis(50);

/// Most rounds an older-era call drives against the client before giving up.
const MAX_ROUNDS: usize = 10;

/// How long an older-era call waits for the client to answer one server-to-client request.
const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a sealed `requestState` stays valid.
const STATE_TTL: Duration = Duration::from_secs(600);

/// The tools that may need input from the client (see `FixtureServer::tool_step`).
const INTERACTIVE_TOOLS: &[&str] = &[
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
];

/// The conformance suite's fixture server.
///
/// Cheap to clone: clones share the `requestState` key and the legacy log level, so a
/// transport that builds one handler per request (rmcp's stateless HTTP service) must be given
/// clones of a single instance.
#[derive(Clone)]
pub struct FixtureServer {
    inner: Arc<Inner>,
}

struct Inner {
    /// Seals and opens `requestState`; the key never leaves the process.
    state_codec: RequestStateCodec,
    /// Level set by a legacy `logging/setLevel`; `None` sends every level.
    log_level: Mutex<Option<LoggingLevel>>,
}

impl Default for FixtureServer {
    fn default() -> Self {
        Self::new()
    }
}

impl FixtureServer {
    /// A fixture server with a fresh `requestState` key.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state_codec: RequestStateCodec::new_unchecked(fresh_key()),
                log_level: Mutex::new(None),
            }),
        }
    }

    /// Capabilities for one era: `resources/subscribe` exists only before 2026-07-28 (there,
    /// `resources.subscribe` would promise `subscriptions/listen` deliveries, which the
    /// fixtures do not offer).
    fn config(legacy: bool) -> ServerConfig {
        let resources = if legacy {
            json!({ "subscribe": true })
        } else {
            json!({})
        };
        let capabilities = json!({
            "tools": {},
            "prompts": {},
            "resources": resources,
            "logging": {},
            "completions": {},
        });
        let capabilities: ServerCapabilities =
            serde_json::from_value(capabilities).unwrap_or_default();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Conformance-suite fixtures (test only): tools, prompts and resources named \
                 test_*, served in both protocol eras.",
            )
    }

    fn seal(&self, fixture: &str, payload: &Value) -> Result<String, ErrorData> {
        let options = SealOptions::new()
            .associated_data(fixture.as_bytes())
            .ttl(STATE_TTL);
        self.inner
            .state_codec
            .seal_json_with(payload, &options)
            .map_err(|error| {
                ErrorData::internal_error(format!("sealing requestState: {error}"), None)
            })
    }

    /// Open a `requestState` this process sealed for `fixture`; anything else is `-32602`.
    fn open(&self, fixture: &str, state: &str) -> Result<Value, ErrorData> {
        self.inner
            .state_codec
            .open_json_with(state, fixture.as_bytes())
            .map_err(|error| {
                ErrorData::invalid_params(
                    "requestState integrity check failed",
                    Some(json!({ "reason": error.to_string() })),
                )
            })
    }

    /// Open `state` when present and check its `kind`; `None` when there is no state.
    fn open_kind(
        &self,
        fixture: &str,
        state: Option<&str>,
        kind: &str,
    ) -> Result<Option<Value>, ErrorData> {
        let Some(state) = state else { return Ok(None) };
        let opened = self.open(fixture, state)?;
        if opened["kind"] == kind {
            Ok(Some(opened))
        } else {
            Err(ErrorData::invalid_params(
                "requestState belongs to another step",
                None,
            ))
        }
    }

    fn legacy_level_allows(&self, level: LoggingLevel) -> bool {
        let threshold = *self
            .inner
            .log_level
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        threshold.is_none_or(|threshold| severity(level) >= severity(threshold))
    }

    /// Whether a log message at `level` may be sent for this request: in 2026-07-28 only when
    /// the request opted in with `io.modelcontextprotocol/logLevel`, before that according to
    /// `logging/setLevel`.
    fn may_log(&self, context: &RequestContext<RoleServer>, level: LoggingLevel) -> bool {
        if is_modern(context) {
            context
                .meta
                .log_level()
                .is_some_and(|threshold| severity(level) >= severity(threshold))
        } else {
            self.legacy_level_allows(level)
        }
    }

    async fn log(&self, context: &RequestContext<RoleServer>, message: &str) {
        if !self.may_log(context, LoggingLevel::Info) {
            return;
        }
        let param = json!({ "level": "info", "logger": SERVER_NAME, "data": message });
        if let Ok(param) = parse::<LoggingMessageNotificationParam>(param) {
            // A client that went away cannot be told anything; the call still completes.
            let _ = context.peer.notify_logging_message(param).await;
        }
    }

    async fn progress(
        &self,
        context: &RequestContext<RoleServer>,
        progress: u32,
        total: u32,
    ) -> bool {
        let Some(token) = context.meta.get_progress_token() else {
            return false;
        };
        let param = json!({
            "progressToken": token,
            "progress": progress,
            "total": total,
            "message": format!("Completed step {progress} of {total}"),
        });
        if let Ok(param) = parse::<ProgressNotificationParam>(param) {
            let _ = context.peer.notify_progress(param).await;
        }
        true
    }

    // ----- tools ---------------------------------------------------------------------------

    async fn tool_with_logging(&self, context: &RequestContext<RoleServer>) -> CallToolResult {
        self.log(context, "Tool execution started").await;
        tokio::time::sleep(STEP_DELAY).await;
        self.log(context, "Tool processing data").await;
        tokio::time::sleep(STEP_DELAY).await;
        self.log(context, "Tool execution completed").await;
        text_result("Tool with logging executed successfully")
    }

    async fn tool_with_progress(&self, context: &RequestContext<RoleServer>) -> CallToolResult {
        let Some(token) = context.meta.get_progress_token() else {
            tokio::time::sleep(STEP_DELAY * 2).await;
            return text_result("No progress token was given; no progress was reported.");
        };
        for (step, progress) in [0, 50, 100].into_iter().enumerate() {
            if step > 0 {
                tokio::time::sleep(STEP_DELAY).await;
            }
            self.progress(context, progress, 100).await;
        }
        let token = serde_json::to_value(&token).unwrap_or(Value::Null);
        text_result(match token {
            Value::String(token) => token,
            other => other.to_string(),
        })
    }

    /// The step function of every tool that needs input from the client. `None` for tools
    /// that never do.
    fn tool_step(
        &self,
        name: &str,
        arguments: &JsonObject,
        capabilities: &ClientCapabilities,
        responses: Option<&InputResponses>,
        state: Option<&str>,
    ) -> Option<Result<Step<CallToolResult>, ErrorData>> {
        let step = match name {
            "test_sampling" => {
                let Some(prompt) = arguments.get("prompt").and_then(Value::as_str) else {
                    return Some(Ok(Step::Done(error_result(
                        "missing string argument `prompt`",
                    ))));
                };
                Ok(match sampled_text(responses, "llm_response") {
                    Some(text) => Step::Done(text_result(format!("LLM response: {text}"))),
                    None => Step::ask([("llm_response", sampling(prompt, 100))]),
                })
            }
            "test_elicitation" => {
                let Some(message) = arguments.get("message").and_then(Value::as_str) else {
                    return Some(Ok(Step::Done(error_result(
                        "missing string argument `message`",
                    ))));
                };
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "response": { "type": "string", "description": "User's response" }
                    },
                    "required": ["response"],
                });
                Ok(match elicit_outcome(responses, "user_input") {
                    Some((action, content)) => Step::Done(text_result(format!(
                        "User response: action={action}, content={content}"
                    ))),
                    None => Step::ask([("user_input", elicitation(message, schema))]),
                })
            }
            "test_elicitation_sep1034_defaults" => Ok(match elicit_outcome(responses, "form") {
                Some((action, content)) => Step::Done(text_result(format!(
                    "Elicitation completed: action={action}, content={content}"
                ))),
                None => Step::ask([(
                    "form",
                    elicitation(
                        "Please review and update the form fields with defaults",
                        sep1034_schema(),
                    ),
                )]),
            }),
            "test_elicitation_sep1330_enums" => Ok(match elicit_outcome(responses, "form") {
                Some((action, content)) => Step::Done(text_result(format!(
                    "Elicitation completed: action={action}, content={content}"
                ))),
                None => Step::ask([(
                    "form",
                    elicitation(
                        "Please select options from the enum fields",
                        sep1330_schema(),
                    ),
                )]),
            }),
            "test_input_required_result_elicitation" => {
                Ok(match accepted_string(responses, "user_name", "name") {
                    Some(name) => Step::Done(text_result(format!("Hello, {name}!"))),
                    None => Step::ask([(
                        "user_name",
                        elicitation("What is your name?", string_form("name")),
                    )]),
                })
            }
            "test_input_required_result_sampling" => {
                Ok(match sampled_text(responses, "capital_question") {
                    Some(text) => Step::Done(text_result(format!("Sampling result: {text}"))),
                    None => Step::ask([(
                        "capital_question",
                        sampling("What is the capital of France?", 100),
                    )]),
                })
            }
            "test_input_required_result_list_roots" => {
                Ok(match root_count(responses, "client_roots") {
                    Some(count) => Step::Done(text_result(format!("Found {count} root(s)"))),
                    None => Step::ask([("client_roots", list_roots())]),
                })
            }
            "test_input_required_result_request_state" => {
                self.request_state_step(name, responses, state)
            }
            "test_input_required_result_multiple_inputs" => {
                self.multiple_inputs_step(name, responses, state)
            }
            "test_input_required_result_multi_round" => {
                self.multi_round_step(name, responses, state)
            }
            "test_input_required_result_tampered_state" => {
                self.tampered_state_step(name, responses, state)
            }
            "test_input_required_result_capabilities" => {
                self.capabilities_step(name, capabilities, responses)
            }
            _ => return None,
        };
        Some(step)
    }

    fn request_state_step(
        &self,
        name: &str,
        responses: Option<&InputResponses>,
        state: Option<&str>,
    ) -> Result<Step<CallToolResult>, ErrorData> {
        let valid_state = self.open_kind(name, state, "request-state")?.is_some();
        let confirmed = accepted(responses, "confirm").is_some_and(|content| content["ok"] == true);
        if valid_state && confirmed {
            return Ok(Step::Done(text_result("state-ok: requestState validated")));
        }
        Ok(Step::Ask(Ask {
            requests: vec![("confirm", elicitation("Please confirm", bool_form("ok")))],
            state: Some(self.seal(name, &json!({ "kind": "request-state" }))?),
        }))
    }

    fn multiple_inputs_step(
        &self,
        name: &str,
        responses: Option<&InputResponses>,
        state: Option<&str>,
    ) -> Result<Step<CallToolResult>, ErrorData> {
        if self.open_kind(name, state, "multiple-inputs")?.is_some()
            && let Some(user) = accepted_string(responses, "user_name", "name")
            && let Some(greeting) = sampled_text(responses, "greeting")
            && let Some(roots) = root_count(responses, "client_roots")
        {
            return Ok(Step::Done(text_result(format!(
                "Name: {user}; Greeting: {greeting}; Roots: {roots}"
            ))));
        }
        Ok(Step::Ask(Ask {
            requests: vec![
                (
                    "user_name",
                    elicitation("What is your name?", string_form("name")),
                ),
                ("greeting", sampling("Generate a greeting", 50)),
                ("client_roots", list_roots()),
            ],
            state: Some(self.seal(name, &json!({ "kind": "multiple-inputs" }))?),
        }))
    }

    fn multi_round_step(
        &self,
        name: &str,
        responses: Option<&InputResponses>,
        state: Option<&str>,
    ) -> Result<Step<CallToolResult>, ErrorData> {
        let opened = self.open_kind(name, state, "multi-round")?;
        let round = opened.as_ref().and_then(|state| state["round"].as_u64());
        match round {
            Some(1) => {
                if let Some(user) = accepted_string(responses, "step1", "name") {
                    return Ok(Step::Ask(Ask {
                        requests: vec![(
                            "step2",
                            elicitation(
                                "Step 2: What is your favorite color?",
                                string_form("color"),
                            ),
                        )],
                        state: Some(self.seal(
                            name,
                            &json!({ "kind": "multi-round", "round": 2, "name": user }),
                        )?),
                    }));
                }
            }
            Some(2) => {
                if let Some(color) = accepted_string(responses, "step2", "color") {
                    let user = opened
                        .as_ref()
                        .and_then(|state| state["name"].as_str())
                        .unwrap_or("friend");
                    return Ok(Step::Done(text_result(format!(
                        "Multi-round complete for {user} who likes {color}"
                    ))));
                }
                // The colour is still missing: ask for it again, keeping the name.
                return Ok(Step::Ask(Ask {
                    requests: vec![(
                        "step2",
                        elicitation("Step 2: What is your favorite color?", string_form("color")),
                    )],
                    state: state.map(str::to_owned),
                }));
            }
            _ => {}
        }
        Ok(Step::Ask(Ask {
            requests: vec![(
                "step1",
                elicitation("Step 1: What is your name?", string_form("name")),
            )],
            state: Some(self.seal(name, &json!({ "kind": "multi-round", "round": 1 }))?),
        }))
    }

    fn tampered_state_step(
        &self,
        name: &str,
        responses: Option<&InputResponses>,
        state: Option<&str>,
    ) -> Result<Step<CallToolResult>, ErrorData> {
        // A state that fails verification is rejected here, before anything else.
        let verified = self.open_kind(name, state, "tamper-test")?.is_some();
        if verified && accepted(responses, "confirm").is_some() {
            return Ok(Step::Done(text_result("integrity-ok: state verified")));
        }
        Ok(Step::Ask(Ask {
            requests: vec![("confirm", elicitation("Please confirm", bool_form("ok")))],
            state: Some(self.seal(name, &json!({ "kind": "tamper-test" }))?),
        }))
    }

    /// Asks only for what the client declared: elicitation and/or sampling.
    fn capabilities_step(
        &self,
        name: &str,
        capabilities: &ClientCapabilities,
        responses: Option<&InputResponses>,
    ) -> Result<Step<CallToolResult>, ErrorData> {
        if let Some(responses) = responses.filter(|responses| !responses.is_empty()) {
            let keys: Vec<&str> = responses.keys().map(String::as_str).collect();
            return Ok(Step::Done(text_result(format!(
                "capabilities-ok: received {}",
                keys.join(",")
            ))));
        }
        let mut requests = Vec::new();
        if capabilities.elicitation.is_some() {
            requests.push((
                "elicit_input",
                elicitation("Elicitation input", string_form("value")),
            ));
        }
        if capabilities.sampling.is_some() {
            requests.push(("sample_input", sampling("Sample request", 50)));
        }
        if requests.is_empty() {
            return Ok(Step::Done(text_result(
                "No supported capabilities declared",
            )));
        }
        Ok(Step::Ask(Ask {
            requests,
            state: Some(self.seal(name, &json!({ "kind": "capabilities" }))?),
        }))
    }

    /// Run a step function in the request's era: one step returning an input-required result
    /// (2026-07-28), or rounds of server-to-client requests until the step is done (older).
    async fn drive<T>(
        &self,
        context: &RequestContext<RoleServer>,
        mut responses: Option<InputResponses>,
        mut state: Option<String>,
        step: impl Fn(Option<&InputResponses>, Option<&str>) -> Result<Step<T>, ErrorData>,
    ) -> Result<Outcome<T>, ErrorData> {
        if is_modern(context) {
            return match step(responses.as_ref(), state.as_deref())? {
                Step::Done(done) => Ok(Outcome::Complete(done)),
                Step::Ask(ask) => {
                    let capabilities = context.client_capabilities().unwrap_or_default();
                    let requests = ask.input_requests()?;
                    if let Some(missing) = missing_capabilities(&requests, &capabilities) {
                        return Err(ErrorData::missing_required_client_capability(missing));
                    }
                    Ok(Outcome::InputRequired(InputRequiredResult::new(
                        Some(requests),
                        ask.state,
                    )))
                }
            };
        }
        for _ in 0..MAX_ROUNDS {
            match step(responses.as_ref(), state.as_deref())? {
                Step::Done(done) => return Ok(Outcome::Complete(done)),
                Step::Ask(ask) => {
                    let mut answers = InputResponses::new();
                    for (key, request) in ask.input_requests()? {
                        match ask_peer(context, request).await {
                            Ok(answer) => {
                                answers.insert(key, answer);
                            }
                            Err(reason) => return Ok(Outcome::PeerFailed(reason)),
                        }
                    }
                    responses = Some(answers);
                    state = ask.state;
                }
            }
        }
        Err(ErrorData::internal_error(
            format!("the client did not complete the request within {MAX_ROUNDS} rounds"),
            None,
        ))
    }

    async fn interactive_tool(
        &self,
        request: &CallToolRequestParams,
        arguments: &JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResponse, ErrorData>> {
        let name = request.name.as_ref();
        let capabilities = context.client_capabilities().unwrap_or_default();
        if !INTERACTIVE_TOOLS.contains(&name) {
            return None;
        }
        let outcome = self
            .drive(
                context,
                request.input_responses.clone(),
                request.request_state.clone(),
                |responses, state| {
                    self.tool_step(name, arguments, &capabilities, responses, state)
                        .unwrap_or_else(|| Err(unknown_tool(name)))
                },
            )
            .await;
        Some(outcome.map(|outcome| match outcome {
            Outcome::Complete(result) => CallToolResponse::Complete(result),
            Outcome::InputRequired(result) => CallToolResponse::InputRequired(result),
            Outcome::PeerFailed(reason) => CallToolResponse::Complete(error_result(format!(
                "The client could not provide the requested input: {reason}"
            ))),
        }))
    }
}

/// What a multi-round fixture needs next.
enum Step<T> {
    Done(T),
    Ask(Ask),
}

impl<T> Step<T> {
    fn ask<const N: usize>(requests: [(&'static str, Value); N]) -> Self {
        Step::Ask(Ask {
            requests: requests.into(),
            state: None,
        })
    }
}

/// Input requests (keyed as the suite expects) and the state to echo.
struct Ask {
    requests: Vec<(&'static str, Value)>,
    state: Option<String>,
}

impl Ask {
    fn input_requests(&self) -> Result<InputRequests, ErrorData> {
        self.requests
            .iter()
            .map(|(key, request)| Ok(((*key).to_owned(), parse::<InputRequest>(request.clone())?)))
            .collect()
    }
}

enum Outcome<T> {
    Complete(T),
    InputRequired(InputRequiredResult),
    /// An older-era client refused or failed a server-to-client request.
    PeerFailed(String),
}

/// Whether the request speaks 2026-07-28 or later (its own `_meta`, else the session's
/// `initialize`).
fn is_modern(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28)
}

/// Send one input request to an older-era client and return its result as JSON.
async fn ask_peer(
    context: &RequestContext<RoleServer>,
    request: InputRequest,
) -> Result<Value, String> {
    let request = match request {
        InputRequest::CreateMessage(request) => ServerRequest::CreateMessageRequest(request),
        InputRequest::Elicitation(request) => ServerRequest::ElicitRequest(request),
        InputRequest::ListRoots(request) => ServerRequest::ListRootsRequest(request),
        _ => return Err("unsupported input request".into()),
    };
    let answer = tokio::select! {
        answer = tokio::time::timeout(PEER_REQUEST_TIMEOUT, context.peer.send_request(request)) => answer,
        () = context.ct.cancelled() => return Err("the request was cancelled".into()),
    };
    match answer {
        Ok(Ok(result)) => serde_json::to_value(result).map_err(|error| error.to_string()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s",
            PEER_REQUEST_TIMEOUT.as_secs()
        )),
    }
}

/// The capabilities `requests` need that the client did not declare, if any.
fn missing_capabilities(
    requests: &InputRequests,
    declared: &ClientCapabilities,
) -> Option<ClientCapabilities> {
    let mut missing = serde_json::Map::new();
    for request in requests.values() {
        let (capability, is_declared) = match request {
            InputRequest::CreateMessage(_) => ("sampling", declared.sampling.is_some()),
            InputRequest::Elicitation(_) => ("elicitation", declared.elicitation.is_some()),
            InputRequest::ListRoots(_) => ("roots", declared.roots.is_some()),
            _ => continue,
        };
        if !is_declared {
            missing.insert(capability.to_owned(), json!({}));
        }
    }
    if missing.is_empty() {
        None
    } else {
        serde_json::from_value(Value::Object(missing)).ok()
    }
}

fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// 32 key bytes from std's `RandomState`, which is seeded from the operating system's random
/// source: unguessable by clients, and no extra dependency.
fn fresh_key() -> Vec<u8> {
    let mut key = Vec::with_capacity(RequestStateCodec::MIN_KEY_LENGTH);
    let mut block = 0u64;
    while key.len() < RequestStateCodec::MIN_KEY_LENGTH {
        let random = std::collections::hash_map::RandomState::new();
        key.extend_from_slice(&random.hash_one((block, std::process::id())).to_le_bytes());
        block += 1;
    }
    key
}

/// Parse a result, marked `resultType: "complete"`: 2026-07-28 requires the field and rmcp
/// does not add it to a deserialized result (it strips it again for older peers).
fn complete_result<T: DeserializeOwned>(mut value: Value) -> Result<T, ErrorData> {
    if let Value::Object(fields) = &mut value {
        fields.insert("resultType".to_owned(), json!("complete"));
    }
    parse(value)
}

fn parse<T: DeserializeOwned>(value: Value) -> Result<T, ErrorData> {
    serde_json::from_value(value)
        .map_err(|error| ErrorData::internal_error(format!("malformed fixture: {error}"), None))
}

fn unknown_tool(name: &str) -> ErrorData {
    ErrorData::invalid_params(format!("unknown tool: {name}"), None)
}

fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

fn error_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

// ----- input requests and responses ----------------------------------------------------------

fn elicitation(message: &str, schema: Value) -> Value {
    json!({
        "method": "elicitation/create",
        "params": { "mode": "form", "message": message, "requestedSchema": schema },
    })
}

fn sampling(prompt: &str, max_tokens: u32) -> Value {
    json!({
        "method": "sampling/createMessage",
        "params": {
            "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
            "maxTokens": max_tokens,
        },
    })
}

fn list_roots() -> Value {
    json!({ "method": "roots/list", "params": {} })
}

fn string_form(field: &str) -> Value {
    json!({
        "type": "object",
        "properties": { field: { "type": "string" } },
        "required": [field],
    })
}

fn bool_form(field: &str) -> Value {
    json!({
        "type": "object",
        "properties": { field: { "type": "boolean" } },
        "required": [field],
    })
}

/// SEP-1034: a default for every primitive type.
fn sep1034_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "User name", "default": "John Doe" },
            "age": { "type": "integer", "description": "User age", "default": 30 },
            "score": { "type": "number", "description": "User score", "default": 95.5 },
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": { "type": "boolean", "description": "Verification status", "default": true },
        },
        "required": [],
    })
}

/// SEP-1330: the five enum shapes.
fn sep1330_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Select one option",
                "enum": ["option1", "option2", "option3"],
            },
            "titledSingle": {
                "type": "string",
                "description": "Select one option with titles",
                "oneOf": [
                    { "const": "value1", "title": "First Option" },
                    { "const": "value2", "title": "Second Option" },
                    { "const": "value3", "title": "Third Option" },
                ],
            },
            "legacyEnum": {
                "type": "string",
                "description": "Select one option (legacy)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "description": "Select multiple options",
                "minItems": 1,
                "maxItems": 3,
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] },
            },
            "titledMulti": {
                "type": "array",
                "description": "Select multiple options with titles",
                "minItems": 1,
                "maxItems": 3,
                "items": {
                    "anyOf": [
                        { "const": "value1", "title": "First Choice" },
                        { "const": "value2", "title": "Second Choice" },
                        { "const": "value3", "title": "Third Choice" },
                    ],
                },
            },
        },
        "required": [],
    })
}

fn response<'a>(responses: Option<&'a InputResponses>, key: &str) -> Option<&'a Value> {
    responses?.get(key)
}

/// The content of an accepted elicitation answer.
fn accepted<'a>(responses: Option<&'a InputResponses>, key: &str) -> Option<&'a Value> {
    let answer = response(responses, key)?;
    (answer["action"] == "accept").then_some(&answer["content"])
}

fn accepted_string(responses: Option<&InputResponses>, key: &str, field: &str) -> Option<String> {
    accepted(responses, key)?[field].as_str().map(str::to_owned)
}

/// Any well-formed elicitation answer: its action and its content (`{}` when none).
fn elicit_outcome(responses: Option<&InputResponses>, key: &str) -> Option<(String, Value)> {
    let answer = response(responses, key)?;
    let action = answer["action"].as_str()?;
    if !matches!(action, "accept" | "decline" | "cancel") {
        return None;
    }
    let content = answer.get("content").cloned().unwrap_or_else(|| json!({}));
    Some((action.to_owned(), content))
}

/// The text of a sampling answer (`content` is one block or, with sampling tools, a list).
fn sampled_text(responses: Option<&InputResponses>, key: &str) -> Option<String> {
    let content = &response(responses, key)?["content"];
    let block = if content.is_array() {
        &content[0]
    } else {
        content
    };
    block["text"].as_str().map(str::to_owned)
}

fn root_count(responses: Option<&InputResponses>, key: &str) -> Option<usize> {
    response(responses, key)?["roots"].as_array().map(Vec::len)
}

// ----- definitions ---------------------------------------------------------------------------

fn empty_input() -> Value {
    json!({ "type": "object", "properties": {} })
}

/// The SEP-1613 / SEP-2106 schema the `json-schema-2020-12` scenario looks for, verbatim.
fn json_schema_2020_12_input() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } },
            },
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" },
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": {
            "properties": { "contactMethod": { "const": "phone" } },
            "required": ["contactMethod"],
        },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false,
    })
}

/// Every fixture tool, sorted by name.
fn tool_definitions() -> Vec<Value> {
    let tool = |name: &str, description: &str, input: Value| json!({ "name": name, "description": description, "inputSchema": input });
    let mut tools = vec![
        tool(
            "header_param_echo",
            "Echoes `region`, which travels in the Mcp-Param-Region header too (SEP-2243 \
             custom headers). Sorted first so header scenarios pick it.",
            json!({
                "type": "object",
                "properties": {
                    "region": {
                        "type": "string",
                        "description": "Any text; mirrored in the Mcp-Param-Region header",
                        "x-mcp-header": "Region",
                    },
                },
            }),
        ),
        tool(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613, SEP-2106)",
            json_schema_2020_12_input(),
        ),
        tool(
            "test_simple_text",
            "Tests simple text content response",
            empty_input(),
        ),
        tool(
            "test_image_content",
            "Tests image content response",
            empty_input(),
        ),
        tool(
            "test_audio_content",
            "Tests audio content response",
            empty_input(),
        ),
        tool(
            "test_embedded_resource",
            "Tests embedded resource content response",
            empty_input(),
        ),
        tool(
            "test_multiple_content_types",
            "Tests response with multiple content types (text, image, resource)",
            empty_input(),
        ),
        tool(
            "test_tool_with_logging",
            "Sends three info log messages about 50 ms apart",
            empty_input(),
        ),
        tool(
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100 when the request has a progress token",
            empty_input(),
        ),
        tool(
            "test_error_handling",
            "Always returns a tool error",
            empty_input(),
        ),
        tool(
            "test_reconnection",
            "Completes after 100 ms (SEP-1699 polling probe; the worker cannot close the HTTP \
             stream itself)",
            empty_input(),
        ),
        tool(
            "test_sampling",
            "Asks the client for an LLM completion of `prompt` (sampling/createMessage, or an \
             input-required result on 2026-07-28)",
            json!({
                "type": "object",
                "properties": {
                    "prompt": { "type": "string", "description": "The prompt to send to the LLM" },
                },
                "required": ["prompt"],
            }),
        ),
        tool(
            "test_elicitation",
            "Asks the user for input showing `message` (elicitation/create, or an \
             input-required result on 2026-07-28)",
            json!({
                "type": "object",
                "properties": {
                    "message": { "type": "string", "description": "The message to show the user" },
                },
                "required": ["message"],
            }),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Elicitation with a default for every primitive type (SEP-1034)",
            empty_input(),
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Elicitation with the five enum schema shapes (SEP-1330)",
            empty_input(),
        ),
        tool(
            "test_missing_capability",
            "Needs the sampling capability: -32021 when the request does not declare it",
            empty_input(),
        ),
        tool(
            "test_streaming_elicitation",
            "Completes with text; reports progress when the request has a progress token",
            empty_input(),
        ),
        tool(
            "test_logging_tool",
            "Logs one message only when the request sets io.modelcontextprotocol/logLevel",
            empty_input(),
        ),
        tool(
            "test_input_required_result_elicitation",
            "MRTR: asks for `user_name` by elicitation, then greets",
            empty_input(),
        ),
        tool(
            "test_input_required_result_sampling",
            "MRTR: asks `capital_question` by sampling",
            empty_input(),
        ),
        tool(
            "test_input_required_result_list_roots",
            "MRTR: asks for the client's roots (`client_roots`)",
            empty_input(),
        ),
        tool(
            "test_input_required_result_request_state",
            "MRTR: asks `confirm` with a sealed requestState and checks it on retry",
            empty_input(),
        ),
        tool(
            "test_input_required_result_multiple_inputs",
            "MRTR: asks elicitation, sampling and roots in one round",
            empty_input(),
        ),
        tool(
            "test_input_required_result_multi_round",
            "MRTR: two elicitation rounds with evolving requestState",
            empty_input(),
        ),
        tool(
            "test_input_required_result_tampered_state",
            "MRTR: rejects a requestState that fails HMAC verification with -32602",
            empty_input(),
        ),
        tool(
            "test_input_required_result_capabilities",
            "MRTR: asks only for capabilities the request declares",
            empty_input(),
        ),
    ];
    tools.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    tools
}

fn prompt_definitions() -> Value {
    json!([
        {
            "name": "test_input_required_result_prompt",
            "description": "MRTR: a prompt that first asks the user for context",
        },
        {
            "name": "test_prompt_with_arguments",
            "title": "Prompt With Arguments",
            "description": "A prompt with required arguments",
            "arguments": [
                { "name": "arg1", "description": "First test argument", "required": true },
                { "name": "arg2", "description": "Second test argument", "required": true },
            ],
        },
        {
            "name": "test_prompt_with_embedded_resource",
            "title": "Prompt With Embedded Resource",
            "description": "A prompt that includes an embedded resource",
            "arguments": [
                { "name": "resourceUri", "description": "URI of the resource to embed", "required": true },
            ],
        },
        {
            "name": "test_prompt_with_image",
            "title": "Prompt With Image",
            "description": "A prompt that includes image content",
        },
        {
            "name": "test_simple_prompt",
            "title": "Simple Test Prompt",
            "description": "A simple prompt without arguments",
        },
    ])
}

fn resource_definitions() -> Value {
    json!([
        {
            "uri": "test://static-text",
            "name": "static-text",
            "title": "Static Text Resource",
            "description": "A static text resource for testing",
            "mimeType": "text/plain",
        },
        {
            "uri": "test://static-binary",
            "name": "static-binary",
            "title": "Static Binary Resource",
            "description": "A static binary resource (image) for testing",
            "mimeType": "image/png",
        },
        {
            "uri": "test://watched-resource",
            "name": "watched-resource",
            "title": "Watched Resource",
            "description": "A resource clients may subscribe to (never changes)",
            "mimeType": "text/plain",
        },
    ])
}

fn resource_template_definitions() -> Value {
    json!([{
        "uriTemplate": "test://template/{id}/data",
        "name": "template",
        "title": "Resource Template",
        "description": "A resource template with parameter substitution",
        "mimeType": "application/json",
    }])
}

/// The contents of a fixture resource, `None` for an unknown URI.
fn resource_contents(uri: &str) -> Option<Value> {
    let contents = match uri {
        "test://static-text" => json!({
            "uri": uri,
            "mimeType": "text/plain",
            "text": "This is the content of the static text resource.",
        }),
        "test://static-binary" => json!({
            "uri": uri,
            "mimeType": "image/png",
            "blob": IMAGE_PNG_BASE64,
        }),
        "test://watched-resource" => json!({
            "uri": uri,
            "mimeType": "text/plain",
            "text": "Watched resource content",
        }),
        _ => {
            let id = uri
                .strip_prefix("test://template/")?
                .strip_suffix("/data")
                .filter(|id| !id.is_empty() && !id.contains('/'))?;
            let text =
                json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
            json!({ "uri": uri, "mimeType": "application/json", "text": text.to_string() })
        }
    };
    Some(json!({ "contents": [contents] }))
}

fn prompt_argument<'a>(
    request: &'a GetPromptRequestParams,
    name: &str,
) -> Result<&'a str, ErrorData> {
    request
        .arguments
        .as_ref()
        .and_then(|arguments| arguments.get(name))
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorData::invalid_params(format!("missing required argument {name}"), None))
}

fn prompt_messages(messages: Value) -> Result<GetPromptResult, ErrorData> {
    complete_result(json!({ "messages": messages }))
}

impl ServerHandler for FixtureServer {
    fn get_info(&self) -> ServerConfig {
        Self::config(true)
    }

    async fn discover(
        &self,
        _context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        Ok(DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            Self::config(false),
        ))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *self
            .inner
            .log_level
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(request.level);
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let request = serde_json::to_value(&request).unwrap_or(Value::Null);
        let candidates: &[&str] = if request["ref"]["type"] == "ref/prompt"
            && request["ref"]["name"] == "test_prompt_with_arguments"
        {
            &["paris", "park", "party", "test", "testValue1"]
        } else {
            &[]
        };
        let prefix = request["argument"]["value"].as_str().unwrap_or("");
        let values: Vec<&str> = candidates
            .iter()
            .copied()
            .filter(|candidate| candidate.starts_with(prefix))
            .collect();
        complete_result(json!({
            "completion": { "values": values, "total": values.len(), "hasMore": false },
        }))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        complete_result(json!({ "tools": tool_definitions() }))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tool_definitions()
            .into_iter()
            .find(|tool| tool["name"] == name)
            .and_then(|tool| serde_json::from_value(tool).ok())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.clone().unwrap_or_default();
        let result = match request.name.as_ref() {
            "test_simple_text" => text_result("This is a simple text response for testing."),
            "test_image_content" => {
                CallToolResult::success(vec![ContentBlock::image(IMAGE_PNG_BASE64, "image/png")])
            }
            "test_audio_content" => {
                CallToolResult::success(vec![ContentBlock::audio(AUDIO_WAV_BASE64, "audio/wav")])
            }
            "test_embedded_resource" => complete_result(json!({
                "content": [{
                    "type": "resource",
                    "resource": {
                        "uri": "test://embedded-resource",
                        "mimeType": "text/plain",
                        "text": "This is an embedded resource content.",
                    },
                }],
            }))?,
            "test_multiple_content_types" => complete_result(json!({
                "content": [
                    { "type": "text", "text": "Multiple content types test:" },
                    { "type": "image", "data": IMAGE_PNG_BASE64, "mimeType": "image/png" },
                    {
                        "type": "resource",
                        "resource": {
                            "uri": "test://mixed-content-resource",
                            "mimeType": "application/json",
                            "text": json!({ "test": "data", "value": 123 }).to_string(),
                        },
                    },
                ],
            }))?,
            "test_tool_with_logging" => self.tool_with_logging(&context).await,
            "test_tool_with_progress" => self.tool_with_progress(&context).await,
            "test_error_handling" => {
                error_result("This tool intentionally returns an error for testing")
            }
            "test_reconnection" => {
                tokio::time::sleep(STEP_DELAY * 2).await;
                text_result(
                    "Reconnection test completed successfully. If you received this, the client \
                     properly reconnected after stream closure.",
                )
            }
            "json_schema_2020_12_tool" => text_result(format!(
                "JSON Schema 2020-12 tool called with: {}",
                Value::Object(arguments)
            )),
            "header_param_echo" => text_result(match arguments.get("region") {
                Some(Value::String(region)) => format!("region={region}"),
                Some(other) => format!("region={other}"),
                None => "no region".to_owned(),
            }),
            "test_missing_capability" => {
                let declared = context.client_capabilities().unwrap_or_default();
                if declared.sampling.is_none() {
                    return Err(ErrorData::missing_required_client_capability(parse(
                        json!({ "sampling": {} }),
                    )?));
                }
                text_result("Success")
            }
            "test_streaming_elicitation" => {
                self.progress(&context, 50, 100).await;
                text_result("Streaming complete")
            }
            "test_logging_tool" => {
                self.log(&context, "Diagnostic trace logging activated")
                    .await;
                text_result("Logging evaluated")
            }
            name => {
                return match self.interactive_tool(&request, &arguments, &context).await {
                    Some(response) => response,
                    None => Err(unknown_tool(name)),
                };
            }
        };
        Ok(CallToolResponse::Complete(result))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        complete_result(json!({ "prompts": prompt_definitions() }))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let result = match request.name.as_str() {
            "test_simple_prompt" => prompt_messages(json!([{
                "role": "user",
                "content": { "type": "text", "text": "This is a simple prompt for testing." },
            }]))?,
            "test_prompt_with_arguments" => {
                let arg1 = prompt_argument(&request, "arg1")?;
                let arg2 = prompt_argument(&request, "arg2")?;
                prompt_messages(json!([{
                    "role": "user",
                    "content": {
                        "type": "text",
                        "text": format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"),
                    },
                }]))?
            }
            "test_prompt_with_embedded_resource" => {
                let uri = prompt_argument(&request, "resourceUri")?;
                prompt_messages(json!([
                    {
                        "role": "user",
                        "content": {
                            "type": "resource",
                            "resource": {
                                "uri": uri,
                                "mimeType": "text/plain",
                                "text": "Embedded resource content for testing.",
                            },
                        },
                    },
                    {
                        "role": "user",
                        "content": { "type": "text", "text": "Please process the embedded resource above." },
                    },
                ]))?
            }
            "test_prompt_with_image" => prompt_messages(json!([
                {
                    "role": "user",
                    "content": { "type": "image", "data": IMAGE_PNG_BASE64, "mimeType": "image/png" },
                },
                {
                    "role": "user",
                    "content": { "type": "text", "text": "Please analyze the image above." },
                },
            ]))?,
            "test_input_required_result_prompt" => {
                let outcome = self
                    .drive(
                        &context,
                        request.input_responses.clone(),
                        request.request_state.clone(),
                        |responses, _state| {
                            Ok(
                                match accepted_string(responses, "user_context", "context") {
                                    Some(given) => Step::Done(prompt_messages(json!([{
                                        "role": "user",
                                        "content": {
                                            "type": "text",
                                            "text": format!("Prompt with context: {given}"),
                                        },
                                    }]))?),
                                    None => Step::ask([(
                                        "user_context",
                                        elicitation(
                                            "What context should the prompt use?",
                                            string_form("context"),
                                        ),
                                    )]),
                                },
                            )
                        },
                    )
                    .await?;
                return match outcome {
                    Outcome::Complete(result) => Ok(GetPromptResponse::Complete(result)),
                    Outcome::InputRequired(result) => Ok(GetPromptResponse::InputRequired(result)),
                    Outcome::PeerFailed(reason) => Err(ErrorData::internal_error(
                        format!("the client could not provide the prompt's context: {reason}"),
                        None,
                    )),
                };
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown prompt: {other}"),
                    None,
                ));
            }
        };
        Ok(GetPromptResponse::Complete(result))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        complete_result(json!({ "resources": resource_definitions() }))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        complete_result(json!({ "resourceTemplates": resource_template_definitions() }))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        match resource_contents(&request.uri) {
            Some(contents) => Ok(ReadResourceResponse::Complete(complete_result::<
                ReadResourceResult,
            >(contents)?)),
            // rmcp turns -32002 into -32602 for 2026-07-28 requests (SEP-2164).
            None => Err(ErrorData::resource_not_found(
                format!("Resource not found: {}", request.uri),
                Some(json!({ "uri": request.uri })),
            )),
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // The fixture resources never change, so a subscription never fires.
        resource_contents(&request.uri).map(|_| ()).ok_or_else(|| {
            ErrorData::resource_not_found("Resource not found", Some(json!({ "uri": request.uri })))
        })
    }

    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_definition_parses() {
        let tools = tool_definitions();
        assert_eq!(tools.len(), 26);
        let list: ListToolsResult = serde_json::from_value(json!({ "tools": tools })).unwrap();
        let names: Vec<&str> = list.tools.iter().map(|tool| tool.name.as_ref()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "tools are listed in a stable, sorted order");
        assert_eq!(names[0], "header_param_echo");
        let _: ListPromptsResult =
            serde_json::from_value(json!({ "prompts": prompt_definitions() })).unwrap();
        let _: ListResourcesResult =
            serde_json::from_value(json!({ "resources": resource_definitions() })).unwrap();
        let _: ListResourceTemplatesResult =
            serde_json::from_value(json!({ "resourceTemplates": resource_template_definitions() }))
                .unwrap();
        for uri in [
            "test://static-text",
            "test://static-binary",
            "test://template/123/data",
        ] {
            let _: ReadResourceResult =
                serde_json::from_value(resource_contents(uri).unwrap()).unwrap();
        }
        assert!(resource_contents("test://template//data").is_none());
        assert!(resource_contents("test://nonexistent").is_none());
    }

    #[test]
    fn interactive_tools_are_exactly_those_with_steps() {
        let server = FixtureServer::new();
        let capabilities = ClientCapabilities::default();
        for tool in tool_definitions() {
            let name = tool["name"].as_str().unwrap();
            let arguments = JsonObject::new();
            let has_step = server
                .tool_step(name, &arguments, &capabilities, None, None)
                .is_some();
            assert_eq!(has_step, INTERACTIVE_TOOLS.contains(&name), "{name}");
        }
    }

    #[test]
    fn json_schema_2020_12_survives_the_tool_model() {
        let tool: Tool = serde_json::from_value(
            tool_definitions()
                .into_iter()
                .find(|tool| tool["name"] == "json_schema_2020_12_tool")
                .unwrap(),
        )
        .unwrap();
        let back = serde_json::to_value(&tool).unwrap();
        assert_eq!(back["inputSchema"], json_schema_2020_12_input());
    }

    #[test]
    fn elicitation_schemas_survive_rmcp_exactly() {
        for schema in [
            sep1034_schema(),
            sep1330_schema(),
            string_form("name"),
            bool_form("ok"),
        ] {
            let request: InputRequest =
                serde_json::from_value(elicitation("m", schema.clone())).unwrap();
            let back = serde_json::to_value(&request).unwrap();
            assert_eq!(back["method"], "elicitation/create");
            let mut expected = schema;
            let mut actual = back["params"]["requestedSchema"].clone();
            // rmcp omits an empty `required`; the suite does not look at it.
            expected.as_object_mut().unwrap().remove("required");
            actual.as_object_mut().unwrap().remove("required");
            assert_eq!(actual, expected);
        }
    }

    #[test]
    fn input_requests_parse() {
        for request in [
            sampling("p", 10),
            list_roots(),
            elicitation("m", string_form("x")),
        ] {
            let method = request["method"].clone();
            let parsed: InputRequest = serde_json::from_value(request).unwrap();
            assert_eq!(serde_json::to_value(parsed).unwrap()["method"], method);
        }
    }

    #[test]
    fn sealed_state_rejects_tampering_and_other_fixtures() {
        let server = FixtureServer::new();
        let sealed = server.seal("a", &json!({ "kind": "k" })).unwrap();
        assert_eq!(server.open("a", &sealed).unwrap()["kind"], "k");
        assert!(server.open("a", &format!("{sealed}-TAMPERED")).is_err());
        assert!(server.open("b", &sealed).is_err());
        assert!(FixtureServer::new().open("a", &sealed).is_err());
    }

    #[test]
    fn multi_round_walks_two_rounds() {
        let server = FixtureServer::new();
        let name = "test_input_required_result_multi_round";
        let Step::Ask(first) = server.multi_round_step(name, None, None).unwrap() else {
            panic!("round 1 asks")
        };
        let answer = |key: &str, content: Value| {
            InputResponses::from([(
                key.to_owned(),
                json!({ "action": "accept", "content": content }),
            )])
        };
        let step1 = answer("step1", json!({ "name": "Alice" }));
        let Step::Ask(second) = server
            .multi_round_step(name, Some(&step1), first.state.as_deref())
            .unwrap()
        else {
            panic!("round 2 asks")
        };
        assert_ne!(first.state, second.state);
        let step2 = answer("step2", json!({ "color": "blue" }));
        let Step::Done(done) = server
            .multi_round_step(name, Some(&step2), second.state.as_deref())
            .unwrap()
        else {
            panic!("round 3 completes")
        };
        assert_eq!(
            serde_json::to_value(done).unwrap()["content"][0]["text"],
            "Multi-round complete for Alice who likes blue"
        );
    }
}

//! rmcp's own client against `bulkhead stdio`, in both lifecycles: the legacy `initialize`
//! handshake and the 2026-07-28 `server/discover` + per-request metadata.

use bulkhead_tests::binary;
use rmcp::model::{CallToolRequestParams, CallToolResult, ProtocolVersion};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient};
use serde_json::{Value, json};

async fn connect(lifecycle: ClientLifecycleMode) -> RunningService<RoleClient, ()> {
    #[allow(
        clippy::disallowed_methods,
        reason = "rmcp's client launches the binary under test"
    )]
    let mut command = tokio::process::Command::new(binary("bulkhead"));
    command.arg("stdio");
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn bulkhead");
    ().serve_with_lifecycle(transport, lifecycle)
        .await
        .expect("connect to bulkhead")
}

async fn call(
    client: &RunningService<RoleClient, ()>,
    name: &'static str,
    arguments: Value,
) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(name).with_arguments(arguments))
        .await
        .unwrap_or_else(|error| panic!("{name} failed: {error}"))
}

async fn exercise(client: RunningService<RoleClient, ()>) {
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    for expected in ["echo", "session_close", "session_info", "session_open"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let echo = tools.iter().find(|tool| tool.name == "echo").unwrap();
    let session_schema = &echo.input_schema["properties"]["session"];
    assert_eq!(session_schema["x-mcp-header"], "Session");

    let default = call(&client, "echo", json!({"text": "default session"})).await;
    assert_eq!(
        default.structured_content,
        Some(json!({"text": "default session"}))
    );

    let opened = call(&client, "session_open", json!({})).await;
    let opened = opened.structured_content.expect("structured session_open");
    let handle = opened["session"].as_str().unwrap().to_string();
    let echoed = call(
        &client,
        "echo",
        json!({"text": "explicit", "session": handle}),
    )
    .await;
    assert_eq!(echoed.structured_content, Some(json!({"text": "explicit"})));

    let info = call(&client, "session_info", json!({"session": handle})).await;
    let info = info.structured_content.unwrap();
    assert_eq!(info["session"], handle.as_str());
    assert_eq!(info["pid"], opened["pid"]);
    let default_info = call(&client, "session_info", json!({}))
        .await
        .structured_content
        .unwrap();
    assert_ne!(default_info["session"], handle.as_str());
    assert_ne!(default_info["pid"], info["pid"]);

    call(&client, "session_close", json!({"session": handle})).await;
    let error = client
        .call_tool(
            CallToolRequestParams::new("echo").with_arguments(
                json!({"text": "x", "session": handle})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .expect_err("a closed handle is an error");
    assert!(error.to_string().contains("closed"), "{error}");
    client.cancel().await.expect("disconnect");
}

#[tokio::test]
async fn rmcp_client_over_the_legacy_initialize_lifecycle() {
    let client = connect(ClientLifecycleMode::Initialize).await;
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|server| server.name.as_str()),
        Some("bulkhead")
    );
    exercise(client).await;
}

#[tokio::test]
async fn rmcp_client_over_2026_07_28_discover() {
    let client = connect(ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    })
    .await;
    exercise(client).await;
}

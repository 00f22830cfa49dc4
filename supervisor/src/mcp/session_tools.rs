//! The tools the supervisor answers itself: `session_open`, `session_close` and
//! `session_info` (which merges the built-in worker's broker state with the session's own
//! fields).

use bulkhead_protocol::Era;
use bulkhead_protocol::clock::rfc3339;
use bulkhead_protocol::names::SESSION_INFO;
use serde_json::{Map, Value, json};

use super::reply::{self, RpcError};
use super::{Connection, Sink};

impl Connection {
    pub(super) async fn session_open(&self, era: Era) -> Result<Value, RpcError> {
        let session = self.frontend.registry.open(&self.principal).await?;
        let limits = &self.frontend.registry.limits;
        let structured = json!({
            "session": session.handle,
            "pid": session.worker.pid(),
            "created_at": rfc3339(session.created_at),
            "expires_at": rfc3339(session.expires_at(limits)),
        });
        let text = format!(
            "Opened session {}. Pass it as `session` to other tools; close it with session_close.",
            session.handle
        );
        Ok(reply::tool_result(structured, text, era))
    }

    pub(super) async fn session_close(
        &self,
        handle: Option<String>,
        era: Era,
    ) -> Result<Value, RpcError> {
        let handle = handle.ok_or_else(|| {
            RpcError::invalid_params(
                "session_close needs the `session` argument: the handle to close",
            )
        })?;
        self.frontend
            .registry
            .close(&handle, &self.principal)
            .await?;
        let structured = json!({"session": handle, "closed": true});
        Ok(reply::tool_result(
            structured,
            format!("Closed session {handle}."),
            era,
        ))
    }

    pub(super) async fn session_info(
        &self,
        handle: Option<String>,
        era: Era,
        sink: &Sink,
    ) -> Result<Value, RpcError> {
        let (session, notice) = self.resolve(handle.as_deref()).await?;
        let limits = &self.frontend.registry.limits;
        // The built-in worker knows the broker state; the supervisor knows the session. Merge
        // both. A wrapped server has no such tool (its own `session_info`, if any, is renamed).
        let mut structured = Map::new();
        if self.frontend.registry.wrapped().is_none() {
            let permit = session.in_flight_permit(limits.max_in_flight)?;
            let worker_part = self
                .run_request(
                    &session,
                    permit,
                    "tools/call",
                    json!({"name": SESSION_INFO, "arguments": {}}),
                    sink,
                )
                .await?
                .into_value();
            if let Some(Value::Object(fields)) = worker_part.get("structuredContent") {
                structured = fields.clone();
            }
        }
        structured.extend(session.safe_fields(limits));
        let structured = Value::Object(structured);
        let text = format!(
            "Session {} (worker pid {}), created {}, expires {}.",
            session.handle,
            session.worker.pid(),
            structured["created_at"].as_str().unwrap_or_default(),
            structured["expires_at"].as_str().unwrap_or_default(),
        );
        let mut result = reply::tool_result(structured, text, era);
        if let Some(notice) = notice {
            reply::attach_notice(&mut result, &notice);
        }
        Ok(result)
    }
}

//! A wrapped server's tool names as clients see them: configured renames, and the collisions
//! with Bulkhead's own names that must be renamed or refused at start.
//!
//! Bulkhead owns three tool names (`session_open`, `session_close`, `session_info`) and one
//! argument (`session`, mirrored into the `Mcp-Param-Session` header). A wrapped tool that uses
//! any of them cannot be served as is: its calls would be routed to the supervisor, or its
//! argument taken as a session handle. `--wrap-rename OLD=NEW` renames a tool and
//! `--wrap-rename TOOL:ARG=NEW` renames one argument of a tool; the catalog shows the new
//! names and every call is translated back before it is forwarded. Any collision left is an
//! error at start naming the rename that would fix it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use bulkhead_protocol::names::{SESSION_ARGUMENT, SESSION_HEADER, SESSION_TOOLS};

/// Configured renames, in the server's names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renames {
    /// Server tool name → the name clients see.
    tools: BTreeMap<String, String>,
    /// (server tool name, server argument name) → the argument name clients see.
    arguments: BTreeMap<(String, String), String>,
}

impl Renames {
    /// Parse `OLD=NEW` and `TOOL:ARG=NEW` specifications, reporting every bad one.
    pub fn parse(specs: &[String]) -> Result<Self, Vec<String>> {
        let mut renames = Self::default();
        let mut problems = Vec::new();
        for spec in specs {
            let Some((old, new)) = spec.split_once('=') else {
                problems.push(format!(
                    "--wrap-rename {spec:?}: expected OLD=NEW (a tool) or TOOL:ARGUMENT=NEW (an argument of a tool)"
                ));
                continue;
            };
            let (old, new) = (old.trim(), new.trim());
            if !is_tool_name(new) {
                problems.push(format!(
                    "--wrap-rename {spec:?}: {new:?} is not a valid name (1-128 of A-Z a-z 0-9 _ - .)"
                ));
                continue;
            }
            let duplicate = match old.split_once(':') {
                Some((tool, argument)) if is_tool_name(tool) && !argument.is_empty() => renames
                    .arguments
                    .insert((tool.to_string(), argument.to_string()), new.to_string())
                    .is_some(),
                None if is_tool_name(old) => renames
                    .tools
                    .insert(old.to_string(), new.to_string())
                    .is_some(),
                _ => {
                    problems.push(format!(
                        "--wrap-rename {spec:?}: {old:?} is not a tool name or TOOL:ARGUMENT"
                    ));
                    continue;
                }
            };
            if duplicate {
                problems.push(format!("--wrap-rename names {old:?} twice"));
            }
        }
        if problems.is_empty() {
            Ok(renames)
        } else {
            Err(problems)
        }
    }

    /// The server's tools as clients see them, or every collision that remains.
    pub fn apply(&self, server_tools: Vec<Value>) -> Result<Vec<Value>, Vec<String>> {
        let mut problems = Vec::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut tools = Vec::with_capacity(server_tools.len());
        for mut tool in server_tools {
            let Some(server_name) = tool.get("name").and_then(Value::as_str).map(str::to_string)
            else {
                continue;
            };
            let name = self
                .tools
                .get(&server_name)
                .cloned()
                .unwrap_or_else(|| server_name.clone());
            if SESSION_TOOLS.contains(&name.as_str()) {
                problems.push(format!(
                    "the wrapped server's tool {server_name:?} collides with Bulkhead's session tool {name:?}; rename it, e.g. --wrap-rename {server_name}=server_{server_name}"
                ));
            }
            if let Some(other) = seen.insert(name.clone(), server_name.clone()) {
                problems.push(format!(
                    "the wrapped server's tools {other:?} and {server_name:?} would both be called {name:?}"
                ));
            }
            tool["name"] = Value::String(name);
            self.rename_arguments(&server_name, &mut tool, &mut problems);
            tools.push(tool);
        }
        for server_name in self.tools.keys() {
            if !seen.values().any(|seen| seen == server_name) {
                tracing::warn!(
                    "--wrap-rename names {server_name:?}, which the wrapped server does not offer"
                );
            }
        }
        if problems.is_empty() {
            Ok(tools)
        } else {
            Err(problems)
        }
    }

    fn rename_arguments(&self, server_name: &str, tool: &mut Value, problems: &mut Vec<String>) {
        let schema = &mut tool["inputSchema"];
        if let Some(Value::Object(properties)) = schema.get_mut("properties") {
            let renamed: Vec<(String, String)> = properties
                .keys()
                .filter_map(|argument| {
                    let new = self
                        .arguments
                        .get(&(server_name.to_string(), argument.clone()))?;
                    Some((argument.clone(), new.clone()))
                })
                .collect();
            for (old, new) in &renamed {
                if properties.contains_key(new) {
                    problems.push(format!(
                        "--wrap-rename {server_name}:{old}={new}: the tool already has an argument {new:?}"
                    ));
                    continue;
                }
                if let Some(value) = properties.remove(old) {
                    properties.insert(new.clone(), value);
                }
            }
            if properties.contains_key(SESSION_ARGUMENT) {
                problems.push(format!(
                    "the wrapped server's tool {server_name:?} has its own {SESSION_ARGUMENT:?} argument, which Bulkhead uses to route calls to sessions; rename it, e.g. --wrap-rename {server_name}:{SESSION_ARGUMENT}=server_{SESSION_ARGUMENT}"
                ));
            }
            for (argument, property) in properties.iter() {
                let header = property.get("x-mcp-header").and_then(Value::as_str);
                if header.is_some_and(|header| header.eq_ignore_ascii_case(SESSION_HEADER)) {
                    problems.push(format!(
                        "the wrapped server's tool {server_name:?} maps its argument {argument:?} to the Mcp-Param-Session header, which Bulkhead uses for session handles"
                    ));
                }
            }
            if let Some(Value::Array(required)) = schema.get_mut("required") {
                for entry in required.iter_mut() {
                    if let Some(new) = entry
                        .as_str()
                        .and_then(|old| renamed.iter().find(|(from, _)| from == old))
                        .map(|(_, new)| new.clone())
                    {
                        *entry = Value::String(new);
                    }
                }
            }
        }
    }

    /// Translate a call to a tool clients know as `name` back into the server's names: its
    /// tool name, and its renamed arguments in place. A server name that was renamed away is
    /// unknown to clients.
    pub fn to_server(
        &self,
        name: &str,
        arguments: &mut Map<String, Value>,
    ) -> Result<String, String> {
        let server_name = self
            .tools
            .iter()
            .find(|(_, outside)| outside.as_str() == name)
            .map(|(server, _)| server.clone());
        let server_name = match server_name {
            Some(server_name) => server_name,
            None if self.tools.contains_key(name) => {
                return Err(format!("unknown tool: {name}"));
            }
            None => name.to_string(),
        };
        for ((tool, server_argument), outside) in &self.arguments {
            if *tool == server_name
                && let Some(value) = arguments.remove(outside)
            {
                arguments.insert(server_argument.clone(), value);
            }
        }
        Ok(server_name)
    }
}

/// MCP tool names: 1-128 characters of `A-Z a-z 0-9 _ - .`.
fn is_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn renames(specs: &[&str]) -> Renames {
        Renames::parse(
            &specs
                .iter()
                .map(|spec| spec.to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn collisions_are_reported_with_the_rename_that_fixes_them() {
        let tools = vec![
            json!({"name": "session_info", "inputSchema": {"type": "object"}}),
            json!({"name": "search", "inputSchema": {"type": "object", "properties": {"session": {"type": "string"}}}}),
            json!({"name": "fine", "inputSchema": {"type": "object"}}),
        ];
        let problems = Renames::default().apply(tools).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("--wrap-rename session_info=server_session_info"));
        assert!(problems[1].contains("--wrap-rename search:session=server_session"));
    }

    #[test]
    fn renamed_tools_and_arguments_are_shown_and_translated_back() {
        let renames = renames(&["session_info=server_session_info", "search:session=topic"]);
        let tools = renames
            .apply(vec![
                json!({"name": "session_info", "inputSchema": {"type": "object"}}),
                json!({"name": "search", "inputSchema": {"type": "object", "properties": {"session": {"type": "string"}}, "required": ["session"]}}),
            ])
            .unwrap();
        assert_eq!(tools[0]["name"], "server_session_info");
        assert_eq!(
            tools[1]["inputSchema"]["properties"]["topic"]["type"],
            "string"
        );
        assert_eq!(tools[1]["inputSchema"]["required"], json!(["topic"]));

        let mut arguments = Map::new();
        assert_eq!(
            renames
                .to_server("server_session_info", &mut arguments)
                .unwrap(),
            "session_info"
        );
        arguments.insert("topic".into(), json!("rust"));
        assert_eq!(
            renames.to_server("search", &mut arguments).unwrap(),
            "search"
        );
        assert_eq!(arguments.get("session"), Some(&json!("rust")));
        assert!(arguments.get("topic").is_none());
    }

    #[test]
    fn bad_specifications_and_duplicate_names_are_refused() {
        let problems = Renames::parse(&["nope".into(), "a=b c".into(), "x=y".into(), "x=z".into()])
            .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let clash = renames(&["one=two"])
            .apply(vec![json!({"name": "one"}), json!({"name": "two"})])
            .unwrap_err();
        assert!(
            clash[0].contains("would both be called \"two\""),
            "{clash:?}"
        );
    }
}

//! Which node a handle belongs to, and what this node answers for a session that lives on
//! another one.
//!
//! Behind a load balancer, every request for a session is routed by the node prefix of its
//! handle or legacy session id (`<node>.<32 hex>`, see `bulkhead_protocol::handle`). A
//! request whose handle names another node reaches this one only when the balancer could not
//! reach that node — it is down, restarting or gone — and sent the request to any live node
//! instead (the shipped nginx and HAProxy configurations do exactly that). "Unknown session"
//! would be wrong, and a fresh session in its place would be worse: the session existed, and
//! its state lived only in that node's worker. So the answer names the node and says the
//! state is lost.
//!
//! The answer is the same for every well-formed handle with that prefix, whether or not such a
//! session ever existed and whoever owns it, so it confirms nothing beyond the node name the
//! caller already sent. Nothing is forwarded to other nodes (see `deploy/README.md`, "Why
//! nodes do not forward").

use bulkhead_protocol::handle::parse_handle;
use serde_json::{Value, json};

use crate::metrics::{METRICS, Rejection};

/// A session handle or legacy session id that names another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherNode {
    /// The node named by the handle's prefix.
    pub node: String,
    /// This node, which answered instead.
    pub answered_by: String,
}

impl OtherNode {
    /// The node `handle` names, if it is well formed and names a node other than `this_node`.
    /// Counts the request under the `other_node` rejection when it does: a rising count means
    /// the balancer is sending a node's sessions elsewhere, i.e. that node is unreachable.
    pub fn of(handle: &str, this_node: &str) -> Option<Self> {
        let (node, _) = parse_handle(handle)?;
        if node == this_node {
            return None;
        }
        METRICS.reject(Rejection::OtherNode);
        Some(Self {
            node: node.to_string(),
            answered_by: this_node.to_string(),
        })
    }

    /// The sentence a client sees; `remedy` says how to start over in its protocol era.
    pub fn message(&self, remedy: &str) -> String {
        format!(
            "the session lived on node {}, which this request could not reach (node {} answered instead); a session's state lives only on its own node, so its state is lost: {remedy}",
            self.node, self.answered_by
        )
    }

    /// Machine-readable details for the JSON-RPC error's `data`.
    pub fn data(&self) -> Value {
        json!({"node": self.node, "answered_by": self.answered_by})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn only_well_formed_handles_of_other_nodes_count() {
        let other = OtherNode::of(&format!("n2.{HEX}"), "n1").unwrap();
        assert_eq!(other.node, "n2");
        assert_eq!(other.answered_by, "n1");
        assert_eq!(OtherNode::of(&format!("n1.{HEX}"), "n1"), None);
        assert_eq!(OtherNode::of("n2.not-a-handle", "n1"), None);
        assert_eq!(OtherNode::of("", "n1"), None);
    }

    #[test]
    fn the_message_names_both_nodes_and_the_loss() {
        let other = OtherNode::of(&format!("b-7.{HEX}"), "a").unwrap();
        let message = other.message("open a new session with session_open");
        assert!(message.contains("node b-7, which this request could not reach"));
        assert!(message.contains("node a answered"));
        assert!(message.ends_with("its state is lost: open a new session with session_open"));
    }
}

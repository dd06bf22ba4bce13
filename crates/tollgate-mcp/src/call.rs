//! One governed tool call, whichever way it arrives (`tools/call` on `/mcp`, or the REST
//! execution route): the tool is looked up in the caller's grant, admitted by governance (request
//! limit, price on the budgets), called upstream, settled, and audited — refused calls too.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, ResultType};
use tollgate_core::mcp::split_tool_name;
use tollgate_core::money::Money;
use tollgate_core::usage::ToolCallLog;
use tollgate_governance::snapshot::Snapshot;
use tollgate_governance::{DenialKind, ToolAsk, authorize_key};

use crate::McpSurface;
use crate::error::Refusal;
use crate::grant::Grant;
use crate::upstream::CallError;

/// Who is calling, as admission found them: the snapshot it decided on, the key presented, and
/// the tools the request may reach (after headers and slug).
#[derive(Debug, Clone)]
pub struct Caller {
    pub snapshot: Arc<Snapshot>,
    pub key: String,
    pub grant: Grant,
    /// The request's span, parent of the call's governance and upstream spans.
    pub span: tracing::Span,
}

/// The answer of a call refused or failed before the tool answered: a tool result marked as an
/// error, naming why (a caller's agent reads it; it is not a protocol error).
pub fn refusal(why: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("Tool execution failed: {why}"))])
}

/// The tool result of a refused call: its message, and for a governance refusal the structured
/// fields an HTTP refusal carries in `extra_fields.denial`, under `_meta["tollgate/denial"]`
/// (a tool's `structuredContent` belongs to its own output schema).
fn refused_result(refused: &Refusal) -> CallToolResult {
    let mut result = refusal(&refused.message());
    if let Refusal::Denied(_, _, fields) = refused {
        let mut meta = rmcp::model::MetaObject::default();
        meta.0.insert("tollgate/denial".to_owned(), (**fields).clone());
        result.meta = Some(meta);
    }
    result
}

/// The size of `value` as JSON, counted as it is written, without building the text.
fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => 0,
    }
}

/// The span of a tool call upstream, a child of the request's: which client and tool, and how it
/// ended. Never the arguments or the result.
fn tool_span(client: &str, tool: &str) -> tracing::Span {
    tracing::debug_span!(
        "upstream.tool_call",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        tollgate.mcp.client = client,
        tollgate.mcp.tool = tool,
        tollgate.outcome = tracing::field::Empty,
    )
}

/// A name as audited: at most 200 characters (a caller may send anything).
fn clipped(name: &str) -> String {
    name.chars().take(200).collect()
}

impl McpSurface {
    /// Calls `exposed` (`<client>-<tool>`) for `caller` with `arguments`, governed and audited;
    /// a refused call (not granted, denied by governance, upstream down) is a tool result marked
    /// as an error naming why, as MCP callers expect.
    pub async fn call(&self, caller: &Caller, exposed: &str, arguments: Option<JsonObject>) -> CallToolResult {
        use tracing::Instrument;
        let call = self.execute(caller, exposed, arguments).instrument(caller.span.clone());
        call.await.unwrap_or_else(|refused| refused_result(&refused))
    }

    /// The governed call, with a refusal kept as a value for surfaces that answer it in HTTP.
    pub async fn execute(&self, caller: &Caller, exposed: &str, arguments: Option<JsonObject>) -> Result<CallToolResult, Refusal> {
        let now = tollgate_core::clock::now();
        let access = authorize_key(&caller.snapshot, Some(&caller.key), now)?;
        let catalog = self.0.upstreams.catalog();
        let found =
            split_tool_name(exposed).and_then(|(client, tool)| catalog.clients.iter().find(|c| c.name == client).map(|c| (c, tool)));
        // The oldest live copy that grants the tool governs the call.
        let governing = found.filter(|(c, tool)| caller.grant.allows(&c.client_id, tool)).and_then(|(client, tool)| {
            let copy = access.copies.iter().copied().find(|c| Grant::of(&[&c.mcp], &catalog).allows(&client.client_id, tool))?;
            Some((client, tool, copy))
        });
        let Some((client, tool, copy)) = governing else {
            // Refused before governance: audited with what the caller named (cut short). A name
            // that is no client's stays whole in `tool`, so `client_id` only ever holds a real
            // client's id (it becomes a metrics label).
            let (client_id, tool) = found.map_or((String::new(), exposed), |(client, tool)| (client.client_id.clone(), tool));
            self.0.governor.record_tool_call(ToolCallLog {
                created_at: now,
                user_id: Some(access.user_id.to_owned()),
                virtual_key_id: Some(access.key_id.to_owned()),
                copy_id: None,
                profile_id: None,
                role_id: None,
                client_id: clipped(&client_id),
                tool: clipped(tool),
                outcome: "denied".to_owned(),
                latency_ms: 0,
                argument_bytes: 0,
                result_bytes: 0,
                cost: Money::ZERO,
            });
            return Err(Refusal::ToolNotGranted(format!("tool '{}' is not available to this virtual key", clipped(exposed))));
        };
        let argument_bytes = arguments.as_ref().map_or(0, json_len);
        let ask = ToolAsk { client_id: &client.client_id, exposed, tool, price: client.price_of(tool), argument_bytes };
        let held = match self.0.governor.admit_tool(&access, copy, &ask, now).await {
            Ok(held) => held,
            Err(denial) => {
                let outcome = match denial.kind {
                    DenialKind::BudgetExceeded => "budget",
                    DenialKind::RequestLimited | DenialKind::TokenLimited | DenialKind::RateLimited => "rate_limited",
                    _ => "denied",
                };
                self.0.governor.record_tool_call(ToolCallLog {
                    created_at: now,
                    user_id: Some(access.user_id.to_owned()),
                    virtual_key_id: Some(access.key_id.to_owned()),
                    copy_id: Some(copy.id),
                    profile_id: copy.profile_id.map(|p| p.0),
                    role_id: copy.source_role,
                    client_id: client.client_id.clone(),
                    tool: tool.to_owned(),
                    outcome: outcome.to_owned(),
                    latency_ms: 0,
                    argument_bytes: ask.argument_bytes,
                    result_bytes: 0,
                    cost: Money::ZERO,
                });
                return Err(denial.into());
            }
        };
        let Some(link) = self.0.upstreams.link(&client.client_id) else {
            held.tool_not_sent("upstream_failure");
            return Err(Refusal::Upstream(format!("MCP client '{}' is not connected", client.name)));
        };
        held.mark_sent();
        let span = tool_span(&client.name, tool);
        let answer = link.call(tool, arguments, self.0.settings.call_timeout).await;
        if !span.is_disabled() {
            let outcome = match &answer {
                Ok(result) if result.is_error == Some(true) => "tool_error",
                Ok(_) => "ok",
                Err(CallError::Refused(_)) => "tool_error",
                Err(_) => "upstream_failure",
            };
            span.record("tollgate.outcome", outcome);
            if outcome == "upstream_failure" {
                span.record("otel.status_code", "error");
            }
        }
        drop(span);
        match answer {
            Ok(mut result) => {
                // An upstream on an older protocol leaves the discriminator out; a caller on the
                // newest needs it (rmcp strips it again for callers on older versions).
                result.result_type = Some(ResultType::COMPLETE);
                let outcome = if result.is_error == Some(true) { "tool_error" } else { "ok" };
                held.tool_finished(true, outcome, json_len(&result.content));
                Ok(result)
            }
            // The reason (a connection error, with the upstream's address) is for the log; the
            // caller learns only which client failed.
            Err(CallError::NotConnected(why)) => {
                tracing::warn!(client = %client.name, tool, error = %why, "MCP tool call not sent");
                held.tool_not_sent("upstream_failure");
                Err(Refusal::Upstream(format!("MCP client '{}' is not connected", client.name)))
            }
            Err(CallError::Lost(why)) => {
                tracing::warn!(client = %client.name, tool, error = %why, "MCP tool call got no answer");
                held.tool_finished(true, "upstream_failure", 0);
                Err(Refusal::Upstream(format!("MCP client '{}' did not answer", client.name)))
            }
            Err(CallError::Refused(why)) => {
                held.tool_finished(false, "tool_error", 0);
                Ok(CallToolResult::error(vec![ContentBlock::text(why)]))
            }
        }
    }
}

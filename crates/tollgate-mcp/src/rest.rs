//! `POST /v1/mcp/tool/execute?format=chat|responses`: one tool call for clients that are not MCP
//! clients, under the same admission, grant and metering as `tools/call`, answered as the tool
//! message of the chosen format.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmcp::model::{CallToolResult, JsonObject};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::McpSurface;
use crate::call::Caller;
use crate::error::Refusal;

/// The answer format, as the query names it (`chat` when absent or empty).
#[derive(Debug, Default, Deserialize)]
pub struct FormatQuery {
    #[serde(default)]
    format: Option<String>,
}

/// A function called the chat-completions way: `{id, type, function: {name, arguments}}`.
#[derive(Debug, Deserialize)]
struct ChatCall {
    #[serde(default)]
    id: Option<String>,
    function: ChatFunction,
}

#[derive(Debug, Deserialize)]
struct ChatFunction {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

/// A function called the Responses way: `{call_id, name, arguments}`.
#[derive(Debug, Deserialize)]
struct ResponsesCall {
    #[serde(default)]
    call_id: Option<String>,
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

/// Arguments as sent: a JSON text holding an object (as models write them), an object, or
/// nothing.
fn arguments_of(value: Option<Value>) -> Result<Option<JsonObject>, Refusal> {
    let invalid = || Refusal::Invalid("arguments must be a JSON object, or a string holding one".into());
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            _ => Err(invalid()),
        },
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(invalid()),
    }
}

/// The text of a tool result: its text blocks joined by newlines, other blocks as JSON.
fn text_of(result: &CallToolResult) -> String {
    let mut parts = Vec::with_capacity(result.content.len());
    for block in &result.content {
        match block.as_text() {
            Some(text) => parts.push(text.text.clone()),
            None => parts.push(serde_json::to_string(block).unwrap_or_default()),
        }
    }
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        parts.push(structured.to_string());
    }
    parts.join("\n")
}

/// Runs one call and answers it in the query's format.
pub async fn execute(
    State(surface): State<McpSurface>,
    Extension(caller): Extension<Arc<Caller>>,
    Query(query): Query<FormatQuery>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    match run(&surface, &caller, query.format.as_deref().unwrap_or_default(), body).await {
        Ok(answer) => Json(answer).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn run(surface: &McpSurface, caller: &Caller, format: &str, body: Result<Json<Value>, JsonRejection>) -> Result<Value, Refusal> {
    let Json(body) = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Refusal::TooLarge,
        _ => Refusal::Invalid(format!("the body must be a JSON object: {}", e.body_text())),
    })?;
    let shape = |e: serde_json::Error| Refusal::Invalid(format!("the body is not a tool call of format '{format}': {e}"));
    match format {
        "" | "chat" => {
            let call: ChatCall = serde_json::from_value(body).map_err(shape)?;
            let result = call_named(surface, caller, &call.function.name, call.function.arguments).await?;
            Ok(json!({"role": "tool", "tool_call_id": call.id.unwrap_or_default(), "content": text_of(&result)}))
        }
        "responses" => {
            let call: ResponsesCall = serde_json::from_value(body).map_err(shape)?;
            let result = call_named(surface, caller, &call.name, call.arguments).await?;
            Ok(json!({"type": "function_call_output", "call_id": call.call_id.unwrap_or_default(), "output": text_of(&result)}))
        }
        other => Err(Refusal::Invalid(format!("format must be 'chat' or 'responses', not '{other}'"))),
    }
}

async fn call_named(surface: &McpSurface, caller: &Caller, name: &str, arguments: Option<Value>) -> Result<CallToolResult, Refusal> {
    if name.trim().is_empty() {
        return Err(Refusal::Invalid("a tool name is required".into()));
    }
    let arguments = arguments_of(arguments)?;
    surface.execute(caller, name, arguments).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_read_from_a_json_text_or_an_object_and_nothing_else() {
        assert_eq!(arguments_of(Some(json!("{\"a\":1}"))).ok().flatten().map(|m| m.len()), Some(1));
        assert_eq!(arguments_of(Some(json!({"a": 1}))).ok().flatten().map(|m| m.len()), Some(1));
        assert!(matches!(arguments_of(Some(json!(""))), Ok(None)));
        assert!(arguments_of(Some(json!("[1]"))).is_err());
        assert!(arguments_of(Some(json!(3))).is_err());
    }
}

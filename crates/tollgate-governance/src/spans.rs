//! Governance's spans, children of the request's: one for the identity and access decision and
//! one for the admission (price and reservation), each noting the decision and, when refused, the
//! rule's name. They record ids (user, virtual key, copy), provider and model — never a key's
//! value, nor anything of the prompt. Disabled (traces off) each costs a level check.

use tracing::Span;
use tracing::field::Empty;

use crate::denial::Denial;

/// The identity and access decision on an inference request.
pub(crate) fn authorize(provider: &str, model: &str) -> Span {
    tracing::debug_span!(
        "governance.authorize",
        tollgate.provider = provider,
        tollgate.model = model,
        tollgate.decision = Empty,
        tollgate.denial = Empty,
        tollgate.user_id = Empty,
        tollgate.virtual_key_id = Empty,
        tollgate.copy_id = Empty,
    )
}

/// The identity decision on an MCP request (no provider or model is in play).
pub(crate) fn authorize_key() -> Span {
    tracing::debug_span!(
        "governance.authorize",
        tollgate.decision = Empty,
        tollgate.denial = Empty,
        tollgate.user_id = Empty,
        tollgate.virtual_key_id = Empty,
    )
}

/// The admission of an authorized request under `copy`: priced, and its estimate reserved.
pub(crate) fn admit(copy: i64) -> Span {
    tracing::debug_span!(
        "governance.admit",
        tollgate.copy_id = copy,
        tollgate.decision = Empty,
        tollgate.denial = Empty,
        tollgate.estimate_micros = Empty,
        tollgate.mcp.client = Empty,
        tollgate.mcp.tool = Empty,
    )
}

/// Notes on `span` whether the step let the request through, and the rule if it did not.
pub(crate) fn decided<T>(span: &Span, outcome: &Result<T, Denial>) {
    match outcome {
        Ok(_) => {
            span.record("tollgate.decision", "allowed");
        }
        Err(denial) => {
            span.record("tollgate.decision", "denied");
            span.record("tollgate.denial", denial.kind.name());
        }
    }
}

/// Notes who asked: the user and the key's id (not its value).
pub(crate) fn caller(span: &Span, user_id: &str, key_id: &str) {
    span.record("tollgate.user_id", user_id);
    span.record("tollgate.virtual_key_id", key_id);
}

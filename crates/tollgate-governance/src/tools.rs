//! Governance of MCP tool calls: who a key is and which of its user's copies are live (no
//! provider or model is in play), and the admission of one call — a request on the governing
//! copy's profile-level request limits and the tool's price reserved on its profile budgets.

use chrono::{DateTime, Utc};
use tollgate_core::money::Money;
use tollgate_core::usage::{KeyBlock, ToolCallLog};

use crate::authorize::Estimate;
use crate::counters::{Claim, LineKind, Refusal, Scope};
use crate::denial::{CopyRef, Denial, DenialKind};
use crate::governor::Governor;
use crate::held::Held;
use crate::snapshot::{GovernedCopy, Snapshot};
use crate::spans;
use crate::writer::LogLine;

/// The "provider" a tool call's refusals name.
pub const TOOL_PROVIDER: &str = "mcp";

/// A key that passed the identity checks, and its user's live copies, oldest first.
#[derive(Debug, Clone)]
pub struct KeyAccess<'s> {
    pub user_id: &'s str,
    pub key_id: &'s str,
    pub copies: Vec<&'s GovernedCopy>,
}

/// One tool call as governance sees it.
#[derive(Debug, Clone, Copy)]
pub struct ToolAsk<'a> {
    /// The client's `client_id`.
    pub client_id: &'a str,
    /// The name the caller used (`<client>-<tool>`), for refusals.
    pub exposed: &'a str,
    /// The tool's own name.
    pub tool: &'a str,
    pub price: Money,
    pub argument_bytes: u64,
}

/// The identity checks, first failure wins: key present, known (a rotated-out value past its
/// grace is unknown), active, unexpired, and at least one live copy.
pub fn authorize_key<'s>(snapshot: &'s Snapshot, key: Option<&str>, now: DateTime<Utc>) -> Result<KeyAccess<'s>, Denial> {
    let span = spans::authorize_key();
    let decided = key_access(snapshot, key, now).inspect_err(|d| crate::meters::denied(TOOL_ROUTE, d.kind.name()));
    if !span.is_disabled() {
        spans::decided(&span, &decided);
        if let Ok(access) = &decided {
            spans::caller(&span, access.user_id, access.key_id);
        }
    }
    decided
}

/// The route label of MCP admissions and tool calls.
const TOOL_ROUTE: &str = "mcp";

fn key_access<'s>(snapshot: &'s Snapshot, key: Option<&str>, now: DateTime<Utc>) -> Result<KeyAccess<'s>, Denial> {
    let refused = |kind| Denial::new(kind, TOOL_PROVIDER, "", now);
    let key = key.ok_or_else(|| refused(DenialKind::KeyRequired))?;
    let record =
        snapshot.key(&tollgate_core::auth::sha256(key)).filter(|r| r.value_live_at(now)).ok_or_else(|| refused(DenialKind::KeyNotFound))?;
    match record.blocked_at(now) {
        Some(KeyBlock::Inactive) => return Err(refused(DenialKind::KeyInactive)),
        Some(KeyBlock::Expired) => return Err(refused(DenialKind::KeyExpired)),
        None => {}
    }
    let copies: Vec<&GovernedCopy> = snapshot.copies(&record.user_id).iter().filter(|c| c.live_at(now)).collect();
    if copies.is_empty() {
        return Err(refused(DenialKind::AccessBlocked));
    }
    Ok(KeyAccess { user_id: &record.user_id, key_id: &record.id, copies })
}

impl Governor {
    /// Admits one tool call under `copy` (the caller's oldest live copy that grants the tool): a
    /// request on the copy's profile-level request limit, and, for a priced tool, its price on
    /// every profile budget — all or nothing. Token limits and provider-level lines do not
    /// apply to a tool call. The `Held` it returns settles with `tool_finished`/`tool_not_sent`
    /// and writes the call's audit row then.
    pub async fn admit_tool(
        &self,
        access: &KeyAccess<'_>,
        copy: &GovernedCopy,
        ask: &ToolAsk<'_>,
        now: DateTime<Utc>,
    ) -> Result<Held, Denial> {
        let span = spans::admit(copy.id);
        if !span.is_disabled() {
            span.record("tollgate.mcp.client", ask.client_id);
            span.record("tollgate.mcp.tool", ask.tool);
        }
        let admitted = self.reserve_tool(access, copy, ask, now).await.inspect_err(|d| crate::meters::denied(TOOL_ROUTE, d.kind.name()));
        if !span.is_disabled() {
            spans::decided(&span, &admitted);
        }
        admitted
    }

    async fn reserve_tool(
        &self,
        access: &KeyAccess<'_>,
        copy: &GovernedCopy,
        ask: &ToolAsk<'_>,
        now: DateTime<Utc>,
    ) -> Result<Held, Denial> {
        let cost_micros = u64::try_from(ask.price.micros()).unwrap_or(0);
        let estimate = Estimate { cost_micros, tokens: 0 };
        let mut claims = Vec::with_capacity(1 + copy.profile.budgets.len());
        if let Some(requests) = &copy.profile.requests {
            claims.push(Claim {
                line: std::sync::Arc::clone(&requests.line),
                kind: LineKind::Requests,
                limit: requests.limit,
                period: requests.period,
                calendar_aligned: copy.calendar_aligned,
                anchor: copy.created_at,
                estimate: 1,
                scope: Scope::Profile,
                copy: copy.id,
            });
        }
        if cost_micros > 0 {
            for budget in &copy.profile.budgets {
                let grant = copy.active_override(budget, now);
                let limit = budget.limit.micros() + grant.map_or(0, |g| g.amount.micros());
                claims.push(Claim {
                    line: std::sync::Arc::clone(&budget.line),
                    kind: LineKind::Budget,
                    limit: u64::try_from(limit).unwrap_or(0),
                    period: budget.period,
                    calendar_aligned: copy.calendar_aligned,
                    anchor: budget.anchor,
                    estimate: cost_micros,
                    scope: Scope::Profile,
                    copy: copy.id,
                });
            }
        }
        let reservation = match self.0.counters.reserve(&claims, now).await {
            Ok(reserved) => reserved.id,
            Err(Refusal::Denied(lines)) => return Err(Denial::of_lines(lines, CopyRef::of(copy), TOOL_PROVIDER, ask.exposed, now)),
            Err(Refusal::Unavailable) => return Err(Denial::new(DenialKind::CountersUnavailable, TOOL_PROVIDER, ask.exposed, now)),
        };
        claims.retain(|c| c.kind == LineKind::Requests);
        let row = ToolCallLog {
            created_at: now,
            user_id: Some(access.user_id.to_owned()),
            virtual_key_id: Some(access.key_id.to_owned()),
            copy_id: Some(copy.id),
            profile_id: copy.profile_id.map(|p| p.0),
            role_id: copy.source_role,
            client_id: ask.client_id.to_owned(),
            tool: ask.tool.to_owned(),
            outcome: String::new(),
            latency_ms: 0,
            argument_bytes: ask.argument_bytes,
            result_bytes: 0,
            cost: Money::ZERO,
        };
        Ok(Held::new(self.clone(), reservation, None, (estimate, 0), claims, LogLine::ToolCall(row)))
    }

    /// Records the audit row of a call refused before admission (not granted, a limit, a budget).
    pub fn record_tool_call(&self, row: ToolCallLog) {
        self.0.writer.record(Vec::new(), Some(LogLine::ToolCall(row)));
    }
}

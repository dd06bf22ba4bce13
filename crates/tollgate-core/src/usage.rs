//! The gateway's storage port: what the data plane loads at start and after every management
//! change (keys, copies, overrides, usage), and what its background writer persists.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::copies::UserCopy;
use crate::money::Money;
use crate::overrides::BudgetOverride;
use crate::ports::StoreError;
use crate::providers::{Provider, ProviderKey};

/// A virtual key as the data plane needs it: found by the hash of its value. A rotated key has
/// two records, its current value's and, during the grace period, its previous value's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub value_hash: String,
    pub name: String,
    pub user_id: String,
    pub is_active: bool,
    /// When the key stops working (set by an operator); `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// For a previous value only: the end of its grace period, after which it opens nothing.
    pub value_expires_at: Option<DateTime<Utc>>,
}

impl KeyRecord {
    /// Whether the presented value still opens the key at `now`: the current value always does,
    /// a previous one until its grace period ends (then it is unknown, as a revoked value is).
    pub fn value_live_at(&self, now: DateTime<Utc>) -> bool {
        value_live(self.value_expires_at, now)
    }

    /// Why the key refuses every request at `now`, if it does; inactive wins over expired.
    pub fn blocked_at(&self, now: DateTime<Utc>) -> Option<KeyBlock> {
        key_block(self.is_active, self.expires_at, now)
    }
}

/// Whether a key value whose grace period ends at `value_expires_at` (`None`: the current value)
/// still opens its key at `now`.
pub fn value_live(value_expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    value_expires_at.is_none_or(|end| now < end)
}

/// Why a key with this state refuses every request at `now`, if it does; inactive wins over
/// expired.
pub fn key_block(is_active: bool, expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<KeyBlock> {
    if !is_active {
        Some(KeyBlock::Inactive)
    } else if expires_at.is_some_and(|at| at <= now) {
        Some(KeyBlock::Expired)
    } else {
        None
    }
}

/// Why a virtual key refuses every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBlock {
    /// Deactivated by an operator.
    Inactive,
    /// Past its `expires_at`.
    Expired,
}

/// Takes each user copy of a full load as it is read (in no particular order), so that a load
/// never holds every parsed copy at once.
pub type CopySink<'a> = dyn FnMut(UserCopy) + Send + 'a;

/// Everything governance decisions read, loaded in one consistent pass; the copies go to the
/// load's `CopySink` as they are read.
#[derive(Debug, Clone, Default)]
pub struct GovernanceData {
    pub keys: Vec<KeyRecord>,
    pub overrides: Vec<BudgetOverride>,
    /// Providers managed through the API, with their keys' sealed secrets.
    pub providers: Vec<Provider>,
    pub provider_keys: Vec<(ProviderKey, String)>,
    /// MCP clients (secrets sealed) and Virtual MCPs, for the MCP surface's catalog.
    pub mcp_clients: Vec<crate::mcp_clients::McpClient>,
    pub virtual_mcps: Vec<crate::mcp_clients::VirtualMcp>,
}

/// What some users hold that governance decisions read: their keys, copies and the overrides
/// on their copies' budgets, loaded in one consistent pass. A user of `users` with nothing
/// here holds nothing (deleted, or never given a copy or key).
#[derive(Debug, Clone, Default)]
pub struct UsersData {
    pub users: Vec<String>,
    pub keys: Vec<KeyRecord>,
    pub copies: Vec<UserCopy>,
    pub overrides: Vec<BudgetOverride>,
}

/// What a management write changed, as far as governance is concerned: a few users' keys,
/// copies and overrides (applied to the snapshot in place), or anything else (a full rebuild).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeScope {
    Everything,
    Users(Vec<String>),
}

impl ChangeScope {
    pub fn user(id: &str) -> ChangeScope {
        ChangeScope::Users(vec![id.to_owned()])
    }
}

/// Usage of one counter line in the window that starts at `window_start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageRow {
    Budget { id: String, used: Money, window_start: DateTime<Utc> },
    Tokens { id: String, used: u64, window_start: DateTime<Utc> },
    Requests { id: String, used: u64, window_start: DateTime<Utc> },
}

/// A reservation still open at a usage flush: what charging it whole would add to each of its
/// lines (a row per line, `used` being the reserved amount, in the window it was reserved in).
/// Kept until it settles, so that one a crash left unsettled is charged at the next start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReservation {
    /// Unique across restarts (an instance's own sequence restarts at each start).
    pub id: String,
    pub lines: Vec<UsageRow>,
}

/// One line of the request log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLog {
    pub created_at: DateTime<Utc>,
    pub user_id: Option<String>,
    pub virtual_key_id: Option<String>,
    pub provider: String,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: Money,
    pub status: u16,
    pub latency_ms: u64,
    pub streamed: bool,
    /// The route family asked (`chat_completions`, `messages`, `embeddings`, `count_tokens`).
    pub route: &'static str,
    /// The copy that governed the request, its template and the role whose default gave it
    /// (`None` where no copy was chosen, or for a direct assignment's role).
    pub copy_id: Option<i64>,
    pub profile_id: Option<i64>,
    pub role_id: Option<i64>,
    /// For a request governance refused: the rule (`budget_exceeded`, …) and the message the
    /// caller read, which names the line and its numbers.
    pub denial: Option<&'static str>,
    pub error: Option<String>,
    /// The request as the client sent it and the answer as it received it (a stream's text),
    /// each cut at `MAX_CONTENT_BYTES`; only for a copy whose policy has `log_content`.
    pub request_content: Option<String>,
    pub response_content: Option<String>,
}

/// The most of a request or an answer the log keeps (each), so that one huge prompt cannot fill
/// the writer's queue.
pub const MAX_CONTENT_BYTES: usize = 32 * 1024;

/// `bytes` as text for the log: invalid UTF-8 replaced, and cut at a character boundary within
/// `MAX_CONTENT_BYTES` with a note of the whole size.
pub fn content_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= MAX_CONTENT_BYTES {
        return text.into_owned();
    }
    let mut cut = MAX_CONTENT_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n[truncated by Tollgate: {} bytes in all]", &text[..cut], bytes.len())
}

/// One MCP tool call as audited: who called which tool of which client under which copy, how it
/// ended, how long it took, how big its arguments and result were (never their contents) and
/// what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallLog {
    pub created_at: DateTime<Utc>,
    pub user_id: Option<String>,
    pub virtual_key_id: Option<String>,
    pub copy_id: Option<i64>,
    pub profile_id: Option<i64>,
    /// The role whose default gave the copy (`None` for a direct assignment).
    pub role_id: Option<i64>,
    /// The client's `client_id`.
    pub client_id: String,
    /// The tool's own (upstream) name.
    pub tool: String,
    /// `ok`, `tool_error`, `denied`, `rate_limited`, `budget`, `upstream_failure`.
    pub outcome: String,
    pub latency_ms: u64,
    pub argument_bytes: u64,
    pub result_bytes: u64,
    pub cost: Money,
}

#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Everything governance reads, in one consistent pass; each copy goes to `copies`.
    async fn load_governance(&self, copies: &mut CopySink<'_>) -> Result<GovernanceData, StoreError>;
    /// The keys, copies and overrides of just `users`. The default reads everything and keeps
    /// theirs.
    async fn load_users(&self, users: &[String]) -> Result<UsersData, StoreError> {
        let mut copies: Vec<UserCopy> = Vec::new();
        let all = self
            .load_governance(&mut |c: UserCopy| {
                if users.contains(&c.user_id) {
                    copies.push(c);
                }
            })
            .await?;
        let overrides = all.overrides.into_iter().filter(|o| copies.iter().any(|c| c.id == o.copy_id)).collect();
        let keys = all.keys.into_iter().filter(|k| users.contains(&k.user_id)).collect();
        Ok(UsersData { users: users.to_vec(), keys, copies, overrides })
    }
    /// The governance generation: a number every instance raises after a governance write has
    /// committed, so others can tell cheaply whether their snapshot may be stale. The default
    /// never moves (such a store is only rebuilt by the periodic full reload).
    async fn generation(&self) -> Result<i64, StoreError> {
        Ok(0)
    }
    /// Raises the generation by one and returns the new value.
    async fn bump_generation(&self) -> Result<i64, StoreError> {
        Ok(0)
    }
    /// Persisted usage rows, to rebuild the counters at start (`since: None`: all of them), or
    /// those whose window started after `since` (a line zeroed by a management write).
    async fn load_usage(&self, since: Option<DateTime<Utc>>) -> Result<Vec<UsageRow>, StoreError>;
    /// The stored rows of the given budgets and rate limits (a rate limit gives its tokens and
    /// its requests row), to rebuild counter lines a shared counter store lost. Lines without a
    /// stored row are left out. The default reads every row and keeps the asked ones.
    async fn load_lines(&self, budgets: &[String], rate_limits: &[String]) -> Result<Vec<UsageRow>, StoreError> {
        let mut rows = self.load_usage(None).await?;
        rows.retain(|row| match row {
            UsageRow::Budget { id, .. } => budgets.contains(id),
            UsageRow::Tokens { id, .. } | UsageRow::Requests { id, .. } => rate_limits.contains(id),
        });
        Ok(rows)
    }
    /// Keeps the database's planner statistics current (run about once an hour, off the request
    /// path); the default does nothing.
    async fn maintain(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Persists the latest value of each given line, the request-log lines and the tool-call
    /// audit rows, in one transaction.
    async fn write_usage(&self, rows: &[UsageRow], logs: &[RequestLog], tool_calls: &[ToolCallLog]) -> Result<(), StoreError>;
    /// Records reservations open across a flush and forgets those since settled, in one
    /// transaction.
    async fn journal(&self, opened: &[OpenReservation], closed: &[String]) -> Result<(), StoreError>;
    /// Charges every recorded reservation (left by a crash) onto its lines, in the window it was
    /// reserved in, and forgets them, in one transaction; returns how many there were.
    async fn charge_journal(&self) -> Result<usize, StoreError>;
    /// Deletes request-log lines and tool-call rows older than `before`; returns how many.
    async fn prune_request_logs(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Closes what the store holds open (its connections); a store shared with others keeps them.
    async fn close(&self) {}
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn record(is_active: bool, expires_at: Option<DateTime<Utc>>, value_expires_at: Option<DateTime<Utc>>) -> KeyRecord {
        KeyRecord { id: "k".into(), value_hash: "h".into(), name: "n".into(), user_id: "u".into(), is_active, expires_at, value_expires_at }
    }

    #[test]
    fn a_previous_value_opens_the_key_only_until_its_grace_ends() {
        let now = crate::clock::now();
        assert!(record(true, None, None).value_live_at(now));
        assert!(record(true, None, Some(now + Duration::seconds(1))).value_live_at(now));
        assert!(!record(true, None, Some(now)).value_live_at(now));
    }

    #[test]
    fn an_inactive_key_is_blocked_before_an_expired_one() {
        let now = crate::clock::now();
        assert_eq!(record(true, None, None).blocked_at(now), None);
        assert_eq!(record(true, Some(now + Duration::seconds(1)), None).blocked_at(now), None);
        assert_eq!(record(true, Some(now), None).blocked_at(now), Some(KeyBlock::Expired));
        assert_eq!(record(false, Some(now), None).blocked_at(now), Some(KeyBlock::Inactive));
    }
}

//! Refused requests in the request log: a refusal of a caller whose key is known is logged with
//! its rule, copy and wording; refusals of callers without a valid key are logged at most
//! `ANONYMOUS_PER_SECOND` a second per instance (a flood of bad keys must not flood the
//! database) and only counted beyond that.

use tollgate_core::money::Money;
use tollgate_core::usage::RequestLog;

use crate::admit::Ask;
use crate::denial::Denial;
use crate::governor::Governor;
use crate::meters::{self, Facts};
use crate::writer::LogLine;

/// Refusals of callers without a valid key logged per second and instance.
pub const ANONYMOUS_PER_SECOND: u32 = 50;
/// Longest provider or model text kept from a refused request (the caller wrote it).
const MAX_TEXT: usize = 200;

/// `text` cut to at most `MAX_TEXT` bytes on a character boundary.
fn clipped(text: &str) -> String {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl Governor {
    /// Logs a refusal the surface answered with `status`.
    pub fn log_refusal(&self, denial: &Denial, ask: &Ask<'_>, status: u16) {
        let second = u64::try_from(denial.at.timestamp()).unwrap_or(0);
        if denial.caller.is_none() && !self.0.anonymous_refusals.take(second, ANONYMOUS_PER_SECOND) {
            metrics::counter!(meters::LOG_DROPPED).increment(1);
            return;
        }
        let (user_id, key_id) = denial.caller.clone().unzip();
        let log = RequestLog {
            created_at: denial.at,
            user_id,
            virtual_key_id: key_id,
            provider: clipped(&denial.provider),
            model: clipped(&denial.model),
            prompt_tokens: 0,
            completion_tokens: 0,
            cost: Money::ZERO,
            status,
            latency_ms: u64::try_from(ask.arrived.elapsed().as_millis()).unwrap_or(u64::MAX),
            streamed: ask.stream,
            route: ask.route,
            copy_id: denial.copy.as_ref().map(|c| c.copy_id),
            profile_id: denial.copy.as_ref().and_then(|c| c.profile_id),
            role_id: denial.copy.as_ref().and_then(|c| c.role_id),
            denial: Some(denial.kind.name()),
            error: Some(denial.to_string()),
            request_content: None,
            response_content: None,
        };
        let facts = Facts { route: ask.route, priced: false, overhead: None, upstream: None, denied: true };
        self.0.writer.record(Vec::new(), Some(LogLine::Request(log, facts)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_keeps_whole_characters() {
        let long = "é".repeat(150);
        let cut = clipped(&long);
        assert!(cut.len() <= MAX_TEXT && cut.chars().all(|c| c == 'é'));
        assert_eq!(clipped("gpt-4o"), "gpt-4o");
    }
}

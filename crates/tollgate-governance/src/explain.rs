//! Explanations: a request judged as admission would judge it — the same key, copy, provider and
//! model checks (`authorize`), the same price and estimate, the same claims — with the counters
//! only read, never reserved; the decision and every check in order, with its numbers. `Explain`
//! is core's `Explainer` port for the management API.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tollgate_core::error::CoreError;
use tollgate_core::explain::{Check, Decision, EstimateFacts, ExplainRequest, Explainer, Explanation, LineFigures};

use crate::admit::estimate;
use crate::authorize::{Access, access_of};
use crate::counters::{Claim, Reading, Refusal};
use crate::denial::{CopyRef, Denial, DenialKind, amount};
use crate::governor::Governor;
use crate::snapshot::Snapshot;

/// Governance as the management API asks it for explanations.
#[derive(Debug, Clone)]
pub struct Explain {
    governor: Governor,
    /// Output tokens assumed for a request that sets none (the gateway's setting).
    default_max_tokens: u64,
}

impl Explain {
    pub fn new(governor: Governor, default_max_tokens: u64) -> Explain {
        Explain { governor, default_max_tokens }
    }
}

#[async_trait]
impl Explainer for Explain {
    async fn explain(&self, request: &ExplainRequest) -> Result<Explanation, CoreError> {
        let question = Question::read(request, self.default_max_tokens)?;
        let snapshot = self.governor.snapshot();
        let now = tollgate_core::clock::now();
        let mut answer = Answer::new(&question);
        let access = match who(&snapshot, request, &question, now, &mut answer.explanation.checks)? {
            Ok(access) => access,
            Err(denial) => return Ok(answer.denied(&denial)),
        };
        answer.passed("copy_active", format!("copy {} is active", access.copy.id));
        answer.passed("provider_allowed", format!("provider '{}' is allowed", question.provider));
        answer.passed("model_allowed", format!("model '{}' is allowed", question.model));
        answer.explanation.copy = Some(CopyRef::of(access.copy).facts());
        let price = match self.governor.price_for(&access, &question.provider, &question.model, now) {
            Ok(price) => price,
            Err(denial) => return Ok(answer.denied(&denial)),
        };
        answer.passed("model_priced", if price.is_some() { "the model has a price" } else { "no budget needs a price" }.to_owned());
        let estimated = estimate(price, question.prompt_tokens, question.max_out);
        answer.explanation.estimate = Some(EstimateFacts {
            prompt_tokens: question.prompt_tokens,
            max_tokens: question.max_out,
            tokens: estimated.tokens,
            cost: amount(crate::counters::LineKind::Budget, estimated.cost_micros),
        });
        let claims = access.claims(estimated, now);
        let readings = match self.governor.0.counters.read(&claims, now).await {
            Ok(readings) => readings,
            Err(Refusal::Unavailable | Refusal::Denied(_)) => {
                let denial = Denial::new(DenialKind::CountersUnavailable, &question.provider, &question.model, now);
                return Ok(answer.denied(&denial));
            }
        };
        let mut short = Vec::new();
        for (claim, reading) in claims.iter().zip(&readings) {
            let fits = reading.taken().saturating_add(claim.estimate) <= claim.limit;
            let line = figures(claim, reading, &question.provider);
            let detail = format!("{} of {} held, {} asked", line.used, line.limit, line.estimate);
            answer.explanation.checks.push(Check { check: "line".to_owned(), passed: fits, detail, line: Some(line) });
            if !fits {
                short.push(claim.denial(reading.taken(), reading.window_start));
            }
        }
        if short.is_empty() {
            answer.explanation.decision = Decision::Allow;
            return Ok(answer.explanation);
        }
        let denial = Denial::of_lines(short, CopyRef::of(access.copy), &question.provider, &question.model, now);
        Ok(answer.denied(&denial))
    }
}

/// The request to explain, read and checked.
struct Question {
    provider: String,
    model: String,
    max_out: u64,
    prompt_tokens: u64,
}

impl Question {
    fn read(request: &ExplainRequest, default_max_tokens: u64) -> Result<Question, CoreError> {
        let (provider, model) = request
            .model
            .split_once('/')
            .filter(|(p, m)| !p.is_empty() && !m.is_empty() && !request.model.chars().any(char::is_control))
            .ok_or_else(|| CoreError::invalid("model", "must be written as provider/model, e.g. openai/gpt-4o-mini"))?;
        let embeddings = match request.route.as_deref().unwrap_or("chat_completions") {
            "chat_completions" | "messages" => false,
            "embeddings" => true,
            _ => return Err(CoreError::invalid("route", "must be chat_completions, messages or embeddings")),
        };
        if request.user_id.is_some() == request.virtual_key_id.is_some() {
            return Err(CoreError::invalid("user_id", "give either user_id or virtual_key_id"));
        }
        // An embedding writes no output, so it reserves none (as the embeddings route does).
        let max_out = if embeddings { 0 } else { request.max_tokens.unwrap_or(default_max_tokens) };
        Ok(Question { provider: provider.to_owned(), model: model.to_owned(), max_out, prompt_tokens: request.prompt_tokens.unwrap_or(0) })
    }
}

/// An explanation being written.
struct Answer {
    explanation: Explanation,
}

impl Answer {
    fn new(question: &Question) -> Answer {
        Answer {
            explanation: Explanation {
                decision: Decision::Deny,
                rule: None,
                message: None,
                provider: question.provider.clone(),
                model: question.model.clone(),
                copy: None,
                estimate: None,
                checks: Vec::new(),
            },
        }
    }

    fn passed(&mut self, check: &str, detail: String) {
        self.explanation.checks.push(Check { check: check.to_owned(), passed: true, detail, line: None });
    }

    /// The answer to a refused request: its rule and message, and — unless a line check already
    /// says so — the check that failed.
    fn denied(mut self, denial: &Denial) -> Explanation {
        let check = match denial.kind {
            DenialKind::KeyRequired | DenialKind::KeyNotFound => Some("key_known"),
            DenialKind::KeyInactive => Some("key_active"),
            DenialKind::KeyExpired => Some("key_unexpired"),
            DenialKind::AccessBlocked => Some("copy_active"),
            DenialKind::ProviderBlocked => Some("provider_allowed"),
            DenialKind::ModelBlocked => Some("model_allowed"),
            DenialKind::ModelUnpriced => Some("model_priced"),
            DenialKind::CountersUnavailable => Some("counters"),
            DenialKind::BudgetExceeded | DenialKind::TokenLimited | DenialKind::RequestLimited | DenialKind::RateLimited => None,
        };
        if let Some(check) = check {
            self.explanation.checks.push(Check { check: check.to_owned(), passed: false, detail: denial.to_string(), line: None });
        }
        if let Some(copy) = &denial.copy {
            self.explanation.copy = Some(copy.facts());
        }
        self.explanation.decision = Decision::Deny;
        self.explanation.rule = Some(denial.kind.name().to_owned());
        self.explanation.message = Some(denial.to_string());
        self.explanation
    }
}

/// The caller: a user as named, or a key with its own checks first (each noted in `checks`).
/// `Err` for a key governance does not know; `Ok(Err)` for a refusal.
fn who<'s>(
    snapshot: &'s Snapshot,
    request: &'s ExplainRequest,
    question: &Question,
    now: DateTime<Utc>,
    checks: &mut Vec<Check>,
) -> Result<Result<Access<'s>, Denial>, CoreError> {
    let (provider, model) = (question.provider.as_str(), question.model.as_str());
    if let Some(user) = &request.user_id {
        return Ok(access_of(snapshot, user, "", provider, model, now));
    }
    let id = request.virtual_key_id.as_deref().unwrap_or_default();
    let key = snapshot.key_by_id(id).ok_or_else(|| CoreError::NotFound(format!("virtual key '{id}' not found")))?;
    checks.push(Check { check: "key_known".to_owned(), passed: true, detail: format!("key {id} is known"), line: None });
    if let Some(kind) = key.blocked_at(now).map(|block| match block {
        tollgate_core::usage::KeyBlock::Inactive => DenialKind::KeyInactive,
        tollgate_core::usage::KeyBlock::Expired => DenialKind::KeyExpired,
    }) {
        if kind == DenialKind::KeyExpired {
            checks.push(Check { check: "key_active".to_owned(), passed: true, detail: "the key is active".to_owned(), line: None });
        }
        return Ok(Err(Denial::new(kind, provider, model, now)));
    }
    checks.push(Check { check: "key_active".to_owned(), passed: true, detail: "the key is active".to_owned(), line: None });
    checks.push(Check { check: "key_unexpired".to_owned(), passed: true, detail: "the key has not expired".to_owned(), line: None });
    Ok(access_of(snapshot, &key.user_id, &key.id, provider, model, now))
}

/// A line's figures as an explanation shows them: with the reserved part and what remains.
fn figures(claim: &Claim, reading: &Reading, provider: &str) -> LineFigures {
    let taken = reading.taken();
    let shown = claim.denial(taken, reading.window_start).figures(provider);
    LineFigures {
        reserved: Some(amount(claim.kind, reading.reserved)),
        remaining: Some(amount(claim.kind, claim.limit.saturating_sub(taken))),
        ..shown
    }
}

//! Turns a create/update/clone request plus the stored template into the next valid template,
//! collecting every rule violation; ids of kept lines are matched so their counters survive.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use crate::error::{CoreError, Problems};
use crate::ids::{BudgetId, ProfileId, ProviderConfigId, RateLimitId};
use crate::input::{BudgetInput, CloneProfileRequest, CreateProfileRequest, ProviderConfigInput, RateLimitInput, UpdateProfileRequest};
use crate::money::Money;
use crate::profile::{AccessProfile, Budget, OverrideAction, Policy, ProviderConfig, RateLimit, Rotation, TOTAL_SCOPE};
use crate::window::BudgetResetDuration;

pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_DESCRIPTION_CHARS: usize = 4096;
pub const MAX_TAG_CHARS: usize = 64;
pub const MAX_PROVIDER_NAME_CHARS: usize = 64;
pub const MAX_MODEL_NAME_CHARS: usize = 256;
/// Largest token or request maximum (2^53, so every JSON client reads it exactly).
pub const MAX_RATE_LIMIT: u64 = 1 << 53;

/// The update-only size caps of the contract.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SizeCaps {
    pub provider_configs: usize,
    pub budgets: usize,
    pub tags: usize,
}

pub(crate) const UPDATE_CAPS: SizeCaps = SizeCaps { provider_configs: 100, budgets: 100, tags: 50 };
pub(crate) const NO_CAPS: SizeCaps = SizeCaps { provider_configs: usize::MAX, budgets: usize::MAX, tags: usize::MAX };

/// Fresh provider-config ids handed out by the store for this one write.
pub(crate) type FreshIds<'a> = &'a mut dyn Iterator<Item = ProviderConfigId>;

/// Builds a new template (version 1, inactive) from a create request.
pub(crate) fn created(
    id: ProfileId,
    req: CreateProfileRequest,
    now: DateTime<Utc>,
    fresh: FreshIds<'_>,
) -> Result<AccessProfile, CoreError> {
    let blank = AccessProfile {
        id,
        name: String::new(),
        description: None,
        is_active: false,
        version: 0,
        tags: Vec::new(),
        policy: Policy::default(),
        rotation: Rotation::default(),
        created_at: now,
        updated_at: now,
    };
    let as_update = UpdateProfileRequest {
        name: Some(req.name),
        description: Some(req.description),
        tags: req.tags,
        provider_configs: req.provider_configs,
        budgets: req.budgets,
        rate_limit: Some(req.rate_limit),
        calendar_aligned: Some(req.calendar_aligned),
        log_content: Some(req.log_content),
        auto_rotation_interval: Some(req.auto_rotation_interval),
        next_rotation_at: req.next_rotation_at.map(Some),
        mcp_tool_groups: req.mcp_tool_groups,
        mcp_servers: req.mcp_servers,
        mcp_tool_overrides: req.mcp_tool_overrides,
    };
    let mut next = updated(&blank, as_update, NO_CAPS, now, fresh)?;
    next.version = 1;
    Ok(next)
}

/// Applies a partial update; absent members keep their stored value.
pub(crate) fn updated(
    current: &AccessProfile,
    req: UpdateProfileRequest,
    caps: SizeCaps,
    now: DateTime<Utc>,
    fresh: FreshIds<'_>,
) -> Result<AccessProfile, CoreError> {
    let mut p = Problems::default();
    let mut next = current.clone();
    if let Some(name) = req.name {
        next.name = checked_name(&mut p, "name", &name);
    }
    if let Some(description) = req.description {
        next.description = checked_description(&mut p, description);
    }
    if let Some(tags) = req.tags {
        if tags.len() > caps.tags {
            p.add("tags", format!("at most {} tags are allowed", caps.tags));
        }
        next.tags = checked_tags(&mut p, &tags);
    }
    if let Some(configs) = req.provider_configs {
        if configs.len() > caps.provider_configs {
            p.add("provider_configs", format!("at most {} provider configs are allowed", caps.provider_configs));
        }
        next.policy.provider_configs = provider_configs(&mut p, &current.policy.provider_configs, configs, caps, now, fresh);
    }
    if let Some(budgets) = req.budgets {
        if budgets.len() > caps.budgets {
            p.add("budgets", format!("at most {} budgets are allowed", caps.budgets));
        }
        next.policy.budgets = budget_lines(&mut p, "budgets", &current.policy.budgets, budgets, TOTAL_SCOPE, now);
    }
    if let Some(rate_limit) = req.rate_limit {
        next.policy.rate_limit = rate_limit.map(|r| rate_limit_line(&mut p, "rate_limit", current.policy.rate_limit.as_ref(), &r));
    }
    if let Some(Some(aligned)) = req.calendar_aligned {
        next.policy.calendar_aligned = aligned;
    }
    if let Some(keep) = req.log_content {
        next.policy.log_content = keep.unwrap_or(false);
    }
    if let Some(groups) = req.mcp_tool_groups {
        let mut seen = HashSet::new();
        for (i, g) in groups.iter().enumerate() {
            if g.tool_group_id == 0 {
                p.add(format!("mcp_tool_groups[{i}].tool_group_id"), "must be a positive id");
            }
            if !seen.insert(g.tool_group_id) {
                p.add(format!("mcp_tool_groups[{i}]"), "is listed twice");
            }
        }
        next.policy.mcp_tool_groups = groups;
    }
    if let Some(servers) = req.mcp_servers {
        next.policy.mcp_servers = Vec::with_capacity(servers.len());
        for (i, mut s) in servers.into_iter().enumerate() {
            s.mcp_server_id = required_text(&mut p, &format!("mcp_servers[{i}].mcp_server_id"), &s.mcp_server_id, 255);
            if next.policy.mcp_servers.contains(&s) {
                p.add(format!("mcp_servers[{i}]"), "is listed twice");
            }
            next.policy.mcp_servers.push(s);
        }
    }
    if let Some(overrides) = req.mcp_tool_overrides {
        next.policy.mcp_tool_overrides = Vec::with_capacity(overrides.len());
        for (i, mut o) in overrides.into_iter().enumerate() {
            o.mcp_client_id = required_text(&mut p, &format!("mcp_tool_overrides[{i}].mcp_client_id"), &o.mcp_client_id, 255);
            o.tool_name = required_text(&mut p, &format!("mcp_tool_overrides[{i}].tool_name"), &o.tool_name, 255);
            if next.policy.mcp_tool_overrides.iter().any(|x| x.mcp_client_id == o.mcp_client_id && x.tool_name == o.tool_name) {
                p.add(format!("mcp_tool_overrides[{i}]"), "names the same tool twice");
            }
            next.policy.mcp_tool_overrides.push(o);
        }
    }
    for (i, o) in next.policy.mcp_tool_overrides.iter().enumerate() {
        if o.action == OverrideAction::Exclude && next.policy.grants_server_whole(&o.mcp_client_id) {
            p.add(
                format!("mcp_tool_overrides[{i}]"),
                "cannot exclude a tool of an MCP server that mcp_servers grants whole; grant the wanted tools with include instead",
            );
        }
    }
    next.rotation = rotation(&mut p, &current.rotation, req.auto_rotation_interval, req.next_rotation_at, now);
    p.into_result(next)
}

/// A new independent template carrying `source`'s policy with fresh ids, inactive, version 1.
pub(crate) fn cloned(
    source: &AccessProfile,
    id: ProfileId,
    req: CloneProfileRequest,
    now: DateTime<Utc>,
    fresh: FreshIds<'_>,
) -> Result<AccessProfile, CoreError> {
    let mut p = Problems::default();
    let name = checked_name(&mut p, "name", &req.name);
    let description = match req.description {
        Some(d) => checked_description(&mut p, Some(d)),
        None => source.description.clone(),
    };
    let mut policy = source.policy.clone();
    for budget in &mut policy.budgets {
        renew_budget(budget, now);
    }
    for config in &mut policy.provider_configs {
        config.id = fresh.next().unwrap_or(ProviderConfigId(0));
        config.budgets.iter_mut().for_each(|b| renew_budget(b, now));
        if let Some(r) = &mut config.rate_limit {
            r.id = RateLimitId::generate();
        }
    }
    if let Some(r) = &mut policy.rate_limit {
        r.id = RateLimitId::generate();
    }
    let interval = source.rotation.auto_rotation_interval;
    let rotation = Rotation {
        auto_rotation_interval: interval,
        next_rotation_at: (interval > 0).then(|| now + Duration::nanoseconds(interval)),
        last_rotation_at: None,
    };
    let profile = AccessProfile {
        id,
        name,
        description,
        is_active: false,
        version: 1,
        tags: source.tags.clone(),
        policy,
        rotation,
        created_at: now,
        updated_at: now,
    };
    p.into_result(profile)
}

fn renew_budget(budget: &mut Budget, now: DateTime<Utc>) {
    budget.id = BudgetId::generate();
    budget.current_usage = Money::ZERO;
    budget.last_reset = now;
}

fn checked_name(p: &mut Problems, param: &str, name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        p.add(param, "must not be empty");
    } else if name.chars().count() > MAX_NAME_CHARS {
        p.add(param, format!("must be at most {MAX_NAME_CHARS} characters"));
    } else if name.chars().any(char::is_control) {
        p.add(param, "must not contain control characters");
    }
    name.to_owned()
}

fn checked_description(p: &mut Problems, description: Option<String>) -> Option<String> {
    let description = description.filter(|d| !d.trim().is_empty())?;
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        p.add("description", format!("must be at most {MAX_DESCRIPTION_CHARS} characters"));
    }
    Some(description)
}

fn checked_tags(p: &mut Problems, tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        let tag = required_text(p, &format!("tags[{i}]"), tag, MAX_TAG_CHARS);
        if tag.contains(',') {
            p.add(format!("tags[{i}]"), "must not contain a comma (commas separate tags in the list filter)");
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    out
}

fn required_text(p: &mut Problems, param: &str, value: &str, max_chars: usize) -> String {
    let value = value.trim();
    if value.is_empty() {
        p.add(param, "must not be empty");
    } else if value.chars().count() > max_chars {
        p.add(param, format!("must be at most {max_chars} characters"));
    } else if value.chars().any(char::is_control) {
        p.add(param, "must not contain control characters");
    }
    value.to_owned()
}

fn provider_configs(
    p: &mut Problems,
    existing: &[ProviderConfig],
    inputs: Vec<ProviderConfigInput>,
    caps: SizeCaps,
    now: DateTime<Utc>,
    fresh: FreshIds<'_>,
) -> Vec<ProviderConfig> {
    let mut out: Vec<ProviderConfig> = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let at = format!("provider_configs[{i}]");
        let name = required_text(p, &format!("{at}.provider_name"), &input.provider_name, MAX_PROVIDER_NAME_CHARS);
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            p.add(format!("{at}.provider_name"), "may hold only letters, digits, '-', '_' and '.'");
        }
        if out.iter().any(|c| c.provider_name == name) {
            p.add(format!("{at}.provider_name"), "is configured twice; use one entry per provider");
        }
        let previous =
            input.id.and_then(|id| existing.iter().find(|c| c.id.0 == id)).or_else(|| existing.iter().find(|c| c.provider_name == name));
        let id = match previous {
            Some(c) => c.id,
            None => fresh.next().unwrap_or(ProviderConfigId(0)),
        };
        let mut models: Vec<String> = Vec::new();
        for (j, model) in input.allowed_models.unwrap_or_default().iter().enumerate() {
            let model = required_text(p, &format!("{at}.allowed_models[{j}]"), model, MAX_MODEL_NAME_CHARS);
            if !models.contains(&model) {
                models.push(model);
            }
        }
        let budgets_in = input.budgets.unwrap_or_default();
        if budgets_in.len() > caps.budgets {
            p.add(format!("{at}.budgets"), format!("at most {} budgets are allowed", caps.budgets));
        }
        let old_budgets = previous.map_or(&[][..], |c| c.budgets.as_slice());
        let budgets = budget_lines(p, &format!("{at}.budgets"), old_budgets, budgets_in, &format!("provider:{name}"), now);
        let old_limit = previous.and_then(|c| c.rate_limit.as_ref());
        let rate_limit = input.rate_limit.map(|r| rate_limit_line(p, &format!("{at}.rate_limit"), old_limit, &r));
        out.push(ProviderConfig {
            id,
            provider_name: name,
            all_models_allowed: input.all_models_allowed.unwrap_or(false),
            allowed_models: models,
            budgets,
            rate_limit,
        });
    }
    out
}

fn budget_lines(p: &mut Problems, at: &str, existing: &[Budget], inputs: Vec<BudgetInput>, scope: &str, now: DateTime<Utc>) -> Vec<Budget> {
    let mut seen: HashSet<BudgetResetDuration> = HashSet::new();
    let mut out = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        if let Some(config) = input.reset_config {
            if input.reset_duration != BudgetResetDuration::Quarter {
                p.add(format!("{at}[{i}].reset_config"), "is only allowed with reset_duration \"1Q\"");
            } else if !config.is_valid() {
                p.add(format!("{at}[{i}].reset_config.quarter_start_month"), "must be between 1 and 12");
            }
        }
        if !seen.insert(input.reset_duration) {
            p.add(format!("{at}[{i}].reset_duration"), "is used by another budget line of the same owner");
        }
        let previous = input
            .id
            .as_deref()
            .and_then(|id| existing.iter().find(|b| b.id.0 == id))
            .or_else(|| existing.iter().find(|b| b.reset_duration == input.reset_duration));
        out.push(Budget {
            id: previous.map_or_else(BudgetId::generate, |b| b.id.clone()),
            max_limit: input.max_limit,
            reset_duration: input.reset_duration,
            reset_config: input.reset_config,
            scope: scope.to_owned(),
            current_usage: Money::ZERO,
            last_reset: previous.map_or(now, |b| b.last_reset),
        });
    }
    out
}

fn rate_limit_line(p: &mut Problems, at: &str, existing: Option<&RateLimit>, input: &RateLimitInput) -> RateLimit {
    let pairs = [
        ("token", input.token_max_limit, input.token_reset_duration.is_some()),
        ("request", input.request_max_limit, input.request_reset_duration.is_some()),
    ];
    for (kind, max, has_window) in pairs {
        match (max, has_window) {
            (Some(0), _) => p.add(format!("{at}.{kind}_max_limit"), "must be greater than 0"),
            (Some(m), _) if m > MAX_RATE_LIMIT => p.add(format!("{at}.{kind}_max_limit"), "is too large"),
            (Some(_), false) => p.add(format!("{at}.{kind}_reset_duration"), format!("is required with {kind}_max_limit")),
            (None, true) => p.add(format!("{at}.{kind}_max_limit"), format!("is required with {kind}_reset_duration")),
            _ => {}
        }
    }
    if input.token_max_limit.is_none()
        && input.request_max_limit.is_none()
        && input.token_reset_duration.is_none()
        && input.request_reset_duration.is_none()
    {
        p.add(at, "needs token_max_limit or request_max_limit; send null to remove the rate limit");
    }
    RateLimit {
        id: existing.map_or_else(RateLimitId::generate, |r| r.id.clone()),
        token_max_limit: input.token_max_limit,
        token_reset_duration: input.token_reset_duration,
        request_max_limit: input.request_max_limit,
        request_reset_duration: input.request_reset_duration,
        token_current_usage: 0,
        request_current_usage: 0,
    }
}

#[expect(clippy::option_option, reason = "absent, null and a value are three different requests")]
fn rotation(
    p: &mut Problems,
    current: &Rotation,
    interval: Option<Option<crate::rotation::RotationInterval>>,
    next_at: Option<Option<DateTime<Utc>>>,
    now: DateTime<Utc>,
) -> Rotation {
    let new_interval = match interval {
        None => current.auto_rotation_interval,
        Some(None) => 0,
        Some(Some(value)) => value.to_nanos().unwrap_or_else(|e| {
            p.add("auto_rotation_interval", e.to_string());
            current.auto_rotation_interval
        }),
    };
    let changed = new_interval != current.auto_rotation_interval;
    let default_next = (new_interval > 0).then(|| now + Duration::nanoseconds(new_interval));
    let next_rotation_at = match next_at {
        None if changed => default_next,
        None => current.next_rotation_at,
        Some(None) => {
            if new_interval > 0 {
                p.add("next_rotation_at", "may only be cleared while auto_rotation_interval is off");
            }
            None
        }
        Some(Some(at)) => {
            if new_interval == 0 {
                p.add("next_rotation_at", "requires auto_rotation_interval");
            } else if at <= now {
                p.add("next_rotation_at", "must be in the future");
            }
            Some(at)
        }
    };
    Rotation { auto_rotation_interval: new_interval, next_rotation_at, last_rotation_at: current.last_rotation_at }
}

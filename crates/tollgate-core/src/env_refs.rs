//! Which environment variables a provider key stored through the management API may name
//! (`env.NAME`): only those the operator allows, and never one of Tollgate's own settings.

/// Prefix of the variables Tollgate reads for itself (admin password, sealing key, database and
/// Redis URLs, …); no provider key may name one, whatever the allow-list says.
pub const RESERVED_PREFIX: &str = "TOLLGATE_";

/// The operator's allow-list (`[gateway] provider_key_env_allow`): exact names, or prefixes
/// written with a trailing `*`. Empty by default, so the API can name no variable at all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvAllowList {
    entries: Vec<String>,
}

impl EnvAllowList {
    /// The list as configured; `problems` names entries that can never match.
    pub fn new(entries: Vec<String>) -> Result<Self, Vec<String>> {
        let problems: Vec<String> = entries
            .iter()
            .filter(|e| {
                let name = e.strip_suffix('*').unwrap_or(e);
                name.contains('*') || (!name.is_empty() && !is_name(name))
            })
            .map(|e| format!("'{e}' is not a variable name, nor a prefix ending in '*'"))
            .collect();
        if problems.is_empty() { Ok(Self { entries }) } else { Err(problems) }
    }

    /// Why the management API may not make a key read `name`, or `None` when it may.
    pub fn refusal(&self, name: &str) -> Option<String> {
        if !is_name(name) {
            return Some(format!("'{name}' is not an environment variable name"));
        }
        if name.to_ascii_uppercase().starts_with(RESERVED_PREFIX) {
            return Some(format!("environment variable {name} is one of Tollgate's own settings and is never readable as a provider key"));
        }
        let allowed = self.entries.iter().any(|e| match e.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => e == name,
        });
        (!allowed).then(|| {
            format!("environment variable {name} is not allowed for provider keys; an operator can allow it with [gateway] provider_key_env_allow")
        })
    }
}

/// Letters, digits and `_`, not starting with a digit (what a shell can export).
fn is_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> EnvAllowList {
        EnvAllowList::new(entries.iter().map(|e| (*e).to_owned()).collect()).unwrap_or_default()
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        assert!(EnvAllowList::default().refusal("OPENAI_API_KEY").is_some());
    }

    #[test]
    fn names_and_prefixes_allow_exactly_what_they_say() {
        let allow = list(&["OPENAI_API_KEY", "LLM_KEY_*"]);
        assert_eq!(allow.refusal("OPENAI_API_KEY"), None);
        assert_eq!(allow.refusal("LLM_KEY_GROQ"), None);
        assert!(allow.refusal("OPENAI_API_KEY_2").is_some());
        assert!(allow.refusal("ANTHROPIC_API_KEY").is_some());
        assert!(allow.refusal("LLM_KEY").is_some());
    }

    #[test]
    fn tollgate_settings_are_never_readable_even_when_listed() {
        let allow = list(&["*", "TOLLGATE_ADMIN_PASSWORD"]);
        for name in
            ["TOLLGATE_ADMIN_PASSWORD", "TOLLGATE_ENCRYPTION_KEY", "TOLLGATE_REDIS_URL", "TOLLGATE_DATABASE_URL", "tollgate_admin_password"]
        {
            let why = allow.refusal(name).unwrap_or_default();
            assert!(why.contains("Tollgate's own settings"), "{name}: {why}");
        }
        assert_eq!(allow.refusal("ANYTHING_ELSE"), None);
    }

    #[test]
    fn malformed_names_and_entries_are_refused() {
        assert!(list(&["*"]).refusal("A B").is_some());
        assert!(list(&["*"]).refusal("").is_some());
        assert!(EnvAllowList::new(vec!["A*B".into()]).is_err());
        assert!(EnvAllowList::new(vec!["BAD NAME".into()]).is_err());
        assert!(EnvAllowList::new(vec!["GOOD_*".into(), "*".into(), "NAME".into()]).is_ok());
    }
}

//! Policy the config file declares (roles, profiles, attachments, users): its types, typed reading, idempotent start-up apply.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use tollgate_core::CoreError;
use tollgate_core::auth::Principal;
use tollgate_core::ids::ProfileId;
use tollgate_core::input::{CreateProfileRequest, UpdateProfileRequest};
use tollgate_core::ports::{ProfileFilter, Store, StoreError};
use tollgate_core::profile::AccessProfile;
use tollgate_core::services::assignments::{AssignmentService, AttachRolesRequest};
use tollgate_core::services::directory::DirectoryService;
use tollgate_core::services::profiles::ProfileService;
use tollgate_core::users::{AssignRoleRequest, CreateRoleRequest, CreateUserRequest, Dac, Role, UpdateRoleRequest};
use tollgate_core::vkeys::Sealer;

/// How versions and audit entries name the changes start-up makes.
pub const ACTOR: &str = "config";

/// Everything the configuration file declares, in file order.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub roles: Vec<DeclaredRole>,
    pub access_profiles: Vec<DeclaredProfile>,
    pub users: Vec<DeclaredUser>,
}

impl Declared {
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.access_profiles.is_empty() && self.users.is_empty()
    }
}

/// A `[[roles]]` entry; absent members are left as stored.
#[derive(Debug, Clone)]
pub struct DeclaredRole {
    pub name: String,
    pub description: Option<String>,
    pub dac: Option<Dac>,
}

/// An `[[access_profiles]]` entry. `create` is used when no profile has the name yet; `update`
/// holds exactly the members the entry names, so the others keep what the API gave them.
#[derive(Debug, Clone)]
pub struct DeclaredProfile {
    pub name: String,
    pub create: CreateProfileRequest,
    pub update: UpdateProfileRequest,
    pub active: Option<bool>,
    pub roles: Vec<DeclaredAttachment>,
}

/// An `[[access_profiles.roles]]` entry: the profile is attached to the role named.
#[derive(Debug, Clone)]
pub struct DeclaredAttachment {
    pub role: String,
    pub default: bool,
    pub apply_to_existing: bool,
}

/// A `[[users]]` entry, found by e-mail. The name is used only when the user is created.
#[derive(Debug, Clone)]
pub struct DeclaredUser {
    pub name: String,
    pub email: String,
    pub role: Option<String>,
}

/// Applies the declaration: roles, profiles, attachments, the declared active states, users.
/// The error names the entry that could not be applied and why.
pub async fn apply(declared: &Declared, store: Arc<dyn Store>, sealer: &Sealer) -> Result<(), String> {
    if declared.is_empty() {
        return Ok(());
    }
    let applier = Applier {
        actor: Principal::Admin { username: ACTOR.into() },
        directory: DirectoryService::new(store.clone(), sealer.clone()),
        profiles: ProfileService::new(store.clone()),
        assignments: AssignmentService::new(store.clone(), sealer.clone()),
        store,
    };
    for (i, role) in declared.roles.iter().enumerate() {
        applier.role(role).await.map_err(|e| format!("roles[{i}] \"{}\": {e}", role.name))?;
    }
    let mut ids = Vec::with_capacity(declared.access_profiles.len());
    for (i, profile) in declared.access_profiles.iter().enumerate() {
        ids.push(applier.profile(profile).await.map_err(|e| format!("access_profiles[{i}] \"{}\": {e}", profile.name))?);
    }
    // Attaching a role activates an inactive template, so the declared state is applied after.
    for (i, (profile, id)) in declared.access_profiles.iter().zip(&ids).enumerate() {
        let named = |e: String| format!("access_profiles[{i}] \"{}\": {e}", profile.name);
        applier.attachments(profile, *id).await.map_err(named)?;
        if let Some(active) = profile.active {
            applier.profiles.set_active(&applier.actor, *id, active).await.map_err(|e| named(format!("active: {}", describe(e))))?;
        }
    }
    for (i, user) in declared.users.iter().enumerate() {
        applier.user(user).await.map_err(|e| format!("users[{i}] \"{}\": {e}", user.email))?;
    }
    tracing::info!(
        roles = declared.roles.len(),
        access_profiles = declared.access_profiles.len(),
        users = declared.users.len(),
        "declared policy applied"
    );
    Ok(())
}

/// The services start-up writes through, acting as [`ACTOR`].
struct Applier {
    actor: Principal,
    store: Arc<dyn Store>,
    directory: DirectoryService,
    profiles: ProfileService,
    assignments: AssignmentService,
}

impl Applier {
    /// Creates the role, or updates the description and DAC the file gives when they differ.
    async fn role(&self, declared: &DeclaredRole) -> Result<(), String> {
        let role = if let Some(role) = self.store.role_by_name(&declared.name).await.map_err(|e| e.to_string())? {
            role
        } else {
            let req = CreateRoleRequest { name: declared.name.clone(), description: declared.description.clone(), dac: declared.dac };
            if unless_raced(self.directory.create_role(req).await)?.is_some() {
                return Ok(());
            }
            self.role_named(&declared.name).await?
        };
        let description = declared.description.clone().filter(|d| *d != role.description);
        let dac = declared.dac.filter(|d| *d != role.dac);
        if description.is_some() || dac.is_some() {
            let req = UpdateRoleRequest { name: None, description: description.map(Some), dac };
            self.directory.update_role(role.id, req).await.map_err(describe)?;
        }
        Ok(())
    }

    /// Creates the template, or updates the members the entry names (a no-op writes nothing).
    async fn profile(&self, declared: &DeclaredProfile) -> Result<ProfileId, String> {
        let current = if let Some(current) = self.profile_named(&declared.name).await.map_err(|e| e.to_string())? {
            current
        } else {
            if let Some(created) = unless_raced(self.profiles.create(&self.actor, declared.create.clone()).await)? {
                return Ok(created.id);
            }
            let again = self.profile_named(&declared.name).await.map_err(|e| e.to_string())?;
            again.ok_or_else(|| "the name is taken but no access profile has it".to_owned())?
        };
        self.profiles.update(&self.actor, current.id, declared.update.clone()).await.map_err(describe)?;
        Ok(current.id)
    }

    /// Attaches the declared roles that are missing or whose default flag differs.
    async fn attachments(&self, declared: &DeclaredProfile, id: ProfileId) -> Result<(), String> {
        if declared.roles.is_empty() {
            return Ok(());
        }
        let current = self.store.role_attachments(id).await.map_err(|e| e.to_string())?;
        for (j, attachment) in declared.roles.iter().enumerate() {
            let at = |e: String| format!("roles[{j}] \"{}\": {e}", attachment.role);
            let role = self.role_named(&attachment.role).await.map_err(at)?;
            if current.iter().any(|a| a.role_id == role.id && a.is_default == attachment.default) {
                continue;
            }
            let req = AttachRolesRequest {
                role_ids: vec![role.id],
                is_default: attachment.default,
                apply_to_existing: attachment.apply_to_existing,
            };
            self.assignments.attach_roles(&self.actor, id, req).await.map_err(|e| at(describe(e)))?;
        }
        Ok(())
    }

    /// Creates the user (with the role's default copy), or moves them to the declared role.
    async fn user(&self, declared: &DeclaredUser) -> Result<(), String> {
        let role = match &declared.role {
            Some(name) => Some(self.role_named(name).await.map_err(|e| format!("role: {e}"))?),
            None => None,
        };
        let user = if let Some(user) = self.store.user_by_email(&declared.email).await.map_err(|e| e.to_string())? {
            user
        } else {
            let req =
                CreateUserRequest { name: declared.name.clone(), email: declared.email.clone(), role_id: role.as_ref().map(|r| r.id) };
            if unless_raced(self.directory.create_user(&self.actor, req).await)?.is_some() {
                return Ok(());
            }
            let again = self.store.user_by_email(&declared.email).await.map_err(|e| e.to_string())?;
            again.ok_or_else(|| "the e-mail is taken but no user has it".to_owned())?
        };
        if let Some(role) = role.filter(|r| user.role_id != Some(r.id)) {
            self.directory.assign_role(&self.actor, &user.id, AssignRoleRequest { role_id: role.id }).await.map_err(describe)?;
        }
        Ok(())
    }

    async fn role_named(&self, name: &str) -> Result<Role, String> {
        self.store.role_by_name(name).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("no role is named \"{name}\""))
    }

    /// The template whose name equals `name` ignoring case and surrounding spaces (the rule that
    /// keeps names unique).
    async fn profile_named(&self, name: &str) -> Result<Option<AccessProfile>, StoreError> {
        let key = name.trim().to_lowercase();
        let same = |p: &AccessProfile| p.name.trim().to_lowercase() == key;
        let filter = ProfileFilter { search: Some(name.trim().to_owned()), ..ProfileFilter::default() };
        let found = self.store.list_profiles(&filter).await?.items.into_iter().find(same);
        if found.is_some() || name.is_ascii() {
            return Ok(found);
        }
        // SQLite's LOWER folds ASCII only, so a search may miss a non-ASCII name: read them all.
        Ok(self.store.list_profiles(&ProfileFilter::default()).await?.items.into_iter().find(same))
    }
}

/// `Ok(None)` when the create lost to another writer (a second instance starting with the same
/// file at the same moment): the caller looks the entry up again and goes on as if it existed.
fn unless_raced<T>(created: Result<T, CoreError>) -> Result<Option<T>, String> {
    match created {
        Ok(value) => Ok(Some(value)),
        Err(CoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(describe(e)),
    }
}

/// The whole reason, including the detail an API client would not be shown.
fn describe(e: CoreError) -> String {
    match e {
        CoreError::Internal(detail) | CoreError::Unavailable(detail) => detail,
        other => other.to_string(),
    }
}

/// TOML to JSON: integers stay integers, floats become numbers, datetimes become RFC 3339 text.
pub(crate) fn json_of(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(json_of).collect()),
        toml::Value::Table(table) => Value::Object(table.iter().map(|(k, v)| (k.clone(), json_of(v))).collect()),
    }
}

/// Deserializes `value` as `T`; a failure is reported with the path of the offending member.
///
/// The value is written out as JSON text with one scalar or bracket per line, remembering each
/// line's path, and parsed back, so serde_json's error line names the member. An error raised
/// by a type's own `Deserialize` (an amount out of range, say) is placed where its container
/// stopped: with commas at line ends that is the member's own line, or, for a container's last
/// member, the closing bracket's line, which therefore also remembers that member.
pub(crate) fn typed<T: DeserializeOwned>(problems: &mut Vec<String>, at: &str, value: &Value) -> Option<T> {
    let mut lines = Vec::new();
    layout(value, at, String::new(), "", &mut lines);
    let text = lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join(" \n");
    serde_json::from_str(&text)
        .map_err(|e| {
            let full = e.to_string();
            let message = full.strip_suffix(&format!(" at line {} column {}", e.line(), e.column())).unwrap_or(&full);
            let line = e.line().checked_sub(1).and_then(|l| lines.get(l));
            let whole = ["missing field", "invalid length", "invalid type: map", "invalid type: sequence"];
            let path = match line {
                Some(Line { last: Some(last), .. }) if !whole.iter().any(|w| message.starts_with(w)) => last.as_str(),
                Some(line) => line.path.as_str(),
                None => at,
            };
            problems.push(format!("{path}: {message}"));
        })
        .ok()
}

/// One line of the text `typed` parses: the member it holds and, for a closing bracket, the
/// container's last member.
struct Line {
    text: String,
    path: String,
    last: Option<String>,
}

fn layout(value: &Value, path: &str, lead: String, tail: &str, lines: &mut Vec<Line>) {
    let (open, close, children): (&str, &str, Vec<(String, String, &Value)>) = match value {
        Value::Object(map) => {
            ("{", "}", map.iter().map(|(k, v)| (format!("{path}.{k}"), format!("{}:", Value::String(k.clone())), v)).collect())
        }
        Value::Array(items) => ("[", "]", items.iter().enumerate().map(|(i, v)| (format!("{path}[{i}]"), String::new(), v)).collect()),
        scalar => {
            lines.push(Line { text: format!("{lead}{scalar}{tail}"), path: path.to_owned(), last: None });
            return;
        }
    };
    lines.push(Line { text: lead + open, path: path.to_owned(), last: None });
    let count = children.len();
    let mut last = None;
    for (i, (child, lead, member)) in children.into_iter().enumerate() {
        layout(member, &child, lead, if i + 1 < count { "," } else { "" }, lines);
        last = Some(child);
    }
    lines.push(Line { text: format!("{close}{tail}"), path: path.to_owned(), last });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_member_is_named_by_its_path_wherever_it_sits() {
        let cases = [
            (r#"name = { first = "x" }"#, "name: invalid type: map"),
            (r#"budgets = [{ max_limit = 5, reset_duration = "2M" }]"#, "budgets[0].reset_duration: unknown variant `2M`"),
            (r#"budgets = [{ reset_duration = "1M", max_limit = -5 }]"#, "budgets[0].max_limit: must not be negative"),
            (
                r#"budgets = [{ max_limit = 1, reset_duration = "1Q", reset_config = { month = 2 } }]"#,
                "budgets[0].reset_config.month: unknown field",
            ),
            (
                r#"provider_configs = [{ provider_name = "x", budgets = [{ max_limit = 1, reset_duration = "1d" }, { max_limit = 2e9, reset_duration = "1w" }] }]"#,
                "provider_configs[0].budgets[1].max_limit: must not exceed",
            ),
            ("auto_rotation_interval = 3.5", "auto_rotation_interval: data did not match"),
            ("next_rotation_at = 2030-01-01", "next_rotation_at: "),
            (
                r#"rate_limit = { request_reset_duration = "1h", request_max_limit = 1.5 }"#,
                "rate_limit.request_max_limit: invalid type: floating point",
            ),
        ];
        for (member, expected) in cases {
            let table: toml::Table = member.parse().unwrap_or_else(|e| panic!("{member}: {e}"));
            let mut problems = Vec::new();
            let read = typed::<CreateProfileRequest>(&mut problems, "p", &json_of(&toml::Value::Table(table)));
            assert!(read.is_none() && problems.len() == 1, "{member}: {problems:?}");
            assert!(problems[0].starts_with(&format!("p.{expected}")), "{member}: {problems:?}");
        }
    }
}

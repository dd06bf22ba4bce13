//! Users and roles: create, read, delete users; role CRUD with system roles protected; and role
//! assignment, which replaces only the copies that came from the previous role's default.

use std::sync::Arc;

use serde_json::json;

use crate::audit::AuditAction;
use crate::auth::Principal;
use crate::directory::Write;
use crate::error::{CoreError, Problems};
use crate::ids::Sequence;
use crate::paging::Page;
use crate::ports::{Store, StoreError};
use crate::services::MAX_WRITE_ATTEMPTS;
use crate::services::provision::{plan_copy, plan_uncopy, user_entry};
use crate::users::{
    AssignRoleRequest, CreateRoleRequest, CreateUserRequest, Role, UpdateRoleRequest, User, checked_email, checked_role_name,
    checked_user_name,
};
use crate::vkeys::Sealer;

#[derive(Clone)]
pub struct DirectoryService {
    store: Arc<dyn Store>,
    sealer: Sealer,
}

impl std::fmt::Debug for DirectoryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryService").finish_non_exhaustive()
    }
}

pub(crate) fn user_not_found(id: &str) -> CoreError {
    CoreError::NotFound(format!("user {id} not found"))
}

fn role_not_found(id: i64) -> CoreError {
    CoreError::NotFound(format!("role {id} not found"))
}

/// Why a role could not be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleDeleteRefusal {
    SystemRole,
    Other(CoreError),
}

impl DirectoryService {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer) -> Self {
        Self { store, sealer }
    }

    pub async fn list_users(&self, search: Option<&str>, page: u32, limit: u32) -> Result<Page<User>, CoreError> {
        Ok(self.store.list_users(search, page, limit).await?)
    }

    pub async fn get_user(&self, id: &str) -> Result<User, CoreError> {
        self.store.get_user(id).await?.ok_or_else(|| user_not_found(id))
    }

    /// Creates a user; with a `role_id` the role's default profile is provisioned at once.
    pub async fn create_user(&self, actor: &Principal, req: CreateUserRequest) -> Result<User, CoreError> {
        let mut p = Problems::default();
        let name = checked_user_name(&mut p, &req.name);
        let email = checked_email(&mut p, &req.email);
        p.into_result(())?;
        let role = match req.role_id {
            Some(id) => {
                Some(self.store.get_role(id).await?.ok_or_else(|| CoreError::invalid("role_id", format!("role {id} does not exist")))?)
            }
            None => None,
        };
        let now = crate::clock::now();
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            email,
            role_id: role.as_ref().map(|r| r.id),
            role: role.as_ref().map(summary),
            created_at: now,
            updated_at: now,
        };
        let mut plan = vec![Write::InsertUser(user.clone())];
        if let Some(role) = &role {
            plan.extend(self.default_copy_plan(actor, &user, role.id, &[]).await?);
        }
        match self.store.apply(&plan).await {
            Ok(()) => Ok(user),
            Err(StoreError::Duplicate) => Err(CoreError::Conflict(format!("a user with e-mail '{}' already exists", user.email))),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a user with every copy and key they hold.
    pub async fn delete_user(&self, actor: &Principal, id: &str) -> Result<(), CoreError> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            self.get_user(id).await?;
            let copies = self.store.copies_of_user(id).await?;
            let keys = self.store.keys_of_user(id).await?;
            let mut plan = Vec::new();
            for (i, copy) in copies.iter().enumerate() {
                let (writes, _) = plan_uncopy(actor, copy, &keys, i + 1 < copies.len());
                plan.extend(writes);
            }
            let planned: Vec<String> =
                plan.iter().filter_map(|w| if let Write::DeleteKey(d) = w { Some(d.clone()) } else { None }).collect();
            plan.extend(keys.iter().filter(|k| !planned.contains(&k.id)).map(|k| Write::DeleteKey(k.id.clone())));
            plan.push(Write::DeleteUser(id.to_owned()));
            match self.store.apply(&plan).await {
                Err(StoreError::Stale) => {}
                other => return other.map_err(Into::into),
            }
        }
        Err(CoreError::Unavailable(format!("user {id} kept changing")))
    }

    /// Sets the user's role: copies that came from the previous role's default go, the new
    /// role's default arrives; directly given copies stay.
    pub async fn assign_role(&self, actor: &Principal, user_id: &str, req: AssignRoleRequest) -> Result<User, CoreError> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let user = self.get_user(user_id).await?;
            let role = self.store.get_role(req.role_id).await?.ok_or_else(|| role_not_found(req.role_id))?;
            let copies = self.store.copies_of_user(user_id).await?;
            let keys = self.store.keys_of_user(user_id).await?;
            let (leaving, staying): (Vec<_>, Vec<_>) = copies
                .iter()
                .partition(|c| c.source_role_id.is_some() && c.source_role_id == user.role_id && user.role_id != Some(role.id));
            let mut plan = Vec::new();
            for (i, copy) in leaving.iter().enumerate() {
                let others = !staying.is_empty() || i + 1 < leaving.len();
                plan.extend(plan_uncopy(actor, copy, &keys, others).0);
            }
            plan.push(Write::SetUserRole { user_id: user_id.to_owned(), role_id: Some(role.id) });
            let held: Vec<_> = staying.iter().filter_map(|c| c.parent_profile_id).collect();
            plan.extend(self.default_copy_plan(actor, &user, role.id, &held).await?);
            match self.store.apply(&plan).await {
                Err(StoreError::Stale | StoreError::Duplicate) => {}
                Err(e) => return Err(e.into()),
                Ok(()) => return self.get_user(user_id).await,
            }
        }
        Err(CoreError::Unavailable(format!("user {user_id} kept changing")))
    }

    /// The copy (and key) of the role's default profile, unless the user already holds it.
    async fn default_copy_plan(
        &self,
        actor: &Principal,
        user: &User,
        role_id: i64,
        held: &[crate::ids::ProfileId],
    ) -> Result<Vec<Write>, CoreError> {
        let Some(profile_id) = self.store.role_default_profile(role_id).await? else { return Ok(Vec::new()) };
        if held.contains(&profile_id) {
            return Ok(Vec::new());
        }
        let Some(template) = self.store.get_profile(profile_id).await? else { return Ok(Vec::new()) };
        plan_copy(self.store.as_ref(), &self.sealer, actor, user, &template, Some(role_id)).await
    }

    pub async fn list_roles(&self) -> Result<Vec<Role>, CoreError> {
        Ok(self.store.list_roles().await?)
    }

    pub async fn get_role(&self, id: i64) -> Result<Role, CoreError> {
        self.store.get_role(id).await?.ok_or_else(|| role_not_found(id))
    }

    pub async fn create_role(&self, req: CreateRoleRequest) -> Result<Role, CoreError> {
        let mut p = Problems::default();
        let name = checked_role_name(&mut p, &req.name);
        p.into_result(())?;
        let id = self.store.next_ids(Sequence::Role, 1).await?.first().copied().ok_or_else(|| CoreError::Internal("no role id".into()))?;
        let now = crate::clock::now();
        let role = Role {
            id,
            name,
            description: req.description.unwrap_or_default(),
            is_system_role: false,
            dac: req.dac.unwrap_or_default(),
            created_by_user_id: None,
            created_at: now,
            updated_at: now,
        };
        match self.store.apply(&[Write::InsertRole(role.clone())]).await {
            Ok(()) => Ok(role),
            Err(StoreError::Duplicate) => Err(CoreError::Conflict(format!("a role named '{}' already exists", role.name))),
            Err(e) => Err(e.into()),
        }
    }

    /// Partial update; a system role keeps its name.
    pub async fn update_role(&self, id: i64, req: UpdateRoleRequest) -> Result<Role, CoreError> {
        let mut role = self.get_role(id).await?;
        let mut p = Problems::default();
        if let Some(name) = req.name.filter(|n| *n != role.name) {
            if role.is_system_role {
                return Err(CoreError::Forbidden("a system role cannot be renamed".into()));
            }
            role.name = checked_role_name(&mut p, &name);
        }
        p.into_result(())?;
        if let Some(description) = req.description {
            role.description = description.unwrap_or_default();
        }
        if let Some(dac) = req.dac {
            role.dac = dac;
        }
        role.updated_at = crate::clock::now();
        match self.store.apply(&[Write::UpdateRole(role.clone())]).await {
            Ok(()) => Ok(role),
            Err(StoreError::Duplicate) => Err(CoreError::Conflict(format!("a role named '{}' already exists", role.name))),
            Err(StoreError::Stale) => Err(role_not_found(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a custom role nobody holds; its profile attachments go with it.
    pub async fn delete_role(&self, actor: &Principal, id: i64) -> Result<(), RoleDeleteRefusal> {
        let role = self.get_role(id).await.map_err(RoleDeleteRefusal::Other)?;
        if role.is_system_role {
            return Err(RoleDeleteRefusal::SystemRole);
        }
        let members = self.store.role_member_ids(id).await.map_err(|e| RoleDeleteRefusal::Other(e.into()))?;
        if !members.is_empty() {
            return Err(RoleDeleteRefusal::Other(CoreError::Conflict(format!(
                "role '{}' is held by {} user(s); assign them another role first",
                role.name,
                members.len()
            ))));
        }
        let attached = self.store.profiles_of_role(id).await.map_err(|e| RoleDeleteRefusal::Other(e.into()))?;
        let mut plan = Vec::new();
        for profile_id in attached {
            plan.push(Write::Detach { profile_id, role_id: id });
            let audit = user_entry(actor, AuditAction::DetachRole, Some(profile_id), "", &json!({"role_id": id, "role_deleted": true}));
            plan.push(Write::Audit(crate::audit::NewAuditEntry { user_id: None, ..audit }));
        }
        plan.push(Write::DeleteRole(id));
        match self.store.apply(&plan).await {
            Ok(()) => Ok(()),
            Err(StoreError::Stale) => Err(RoleDeleteRefusal::Other(CoreError::Conflict(format!("role {id} changed; retry")))),
            Err(e) => Err(RoleDeleteRefusal::Other(e.into())),
        }
    }
}

pub(crate) fn summary(role: &Role) -> crate::users::RoleSummary {
    crate::users::RoleSummary {
        id: role.id,
        name: role.name.clone(),
        description: role.description.clone(),
        is_system_role: role.is_system_role,
    }
}

//! The fixed catalogue of `Resource:Operation` permissions; ids are stable across releases.

use serde::Serialize;
use utoipa::ToSchema;

/// Resources in catalogue order. Append only: a permission id is derived from the position.
pub const RESOURCES: [&str; 29] = [
    "AccessProfiles",
    "APIKeys",
    "RBAC",
    "Users",
    "VirtualKeys",
    "ModelProvider",
    "Logs",
    "Observability",
    "Plugins",
    "UserProvisioning",
    "AuditLogs",
    "GuardrailsConfig",
    "GuardrailsProviders",
    "Cluster",
    "Settings",
    "MCPGateway",
    "VirtualMCPs",
    "MCPLogs",
    "AdaptiveRouter",
    "Teams",
    "Customers",
    "BusinessUnits",
    "PromptRepository",
    "RoutingRules",
    "Projects",
    "Dashboard",
    "Webhooks",
    "Warp",
    "WarpSession",
];

/// Operations in catalogue order. Append only.
pub const OPERATIONS: [&str; 5] = ["View", "Create", "Update", "Delete", "Reveal"];

const STRIDE: u64 = 16;

/// One grantable `Resource:Operation` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
pub struct Permission {
    pub id: u64,
    pub resource: &'static str,
    pub operation: &'static str,
}

impl Permission {
    /// The permission for a catalogue resource and operation, if both exist.
    pub fn of(resource: &str, operation: &str) -> Option<Self> {
        let r = RESOURCES.iter().position(|x| *x == resource)?;
        let o = OPERATIONS.iter().position(|x| *x == operation)?;
        Some(Self::at(r, o))
    }

    pub fn by_id(id: u64) -> Option<Self> {
        let r = usize::try_from(id.checked_sub(1)? / STRIDE).ok()?;
        let o = usize::try_from((id - 1) % STRIDE).ok()?;
        (r < RESOURCES.len() && o < OPERATIONS.len()).then(|| Self::at(r, o))
    }

    /// Parses `Resource:Operation`.
    pub fn parse(text: &str) -> Option<Self> {
        let (resource, operation) = text.split_once(':')?;
        Self::of(resource.trim(), operation.trim())
    }

    pub fn all() -> impl Iterator<Item = Permission> {
        (0..RESOURCES.len()).flat_map(|r| (0..OPERATIONS.len()).map(move |o| Self::at(r, o)))
    }

    fn at(r: usize, o: usize) -> Self {
        Self { id: r as u64 * STRIDE + o as u64 + 1, resource: RESOURCES[r], operation: OPERATIONS[o] }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.resource, self.operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_round_trip() {
        assert_eq!(Permission::of("AccessProfiles", "View").map(|p| p.id), Some(1));
        assert_eq!(Permission::of("APIKeys", "Delete").map(|p| p.id), Some(20));
        for p in Permission::all() {
            assert_eq!(Permission::by_id(p.id), Some(p));
            assert_eq!(Permission::parse(&p.to_string()), Some(p));
        }
        assert_eq!(Permission::by_id(0), None);
        assert_eq!(Permission::by_id(6), None);
        assert_eq!(Permission::parse("AccessProfiles:Fly"), None);
    }
}

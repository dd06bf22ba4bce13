//! Admission on `/mcp` and `/mcp/{slug}`, before any JSON-RPC is read: the virtual key is found
//! and checked by governance, the caller's grant is computed once (narrowed by the include
//! headers and the slug) and put on the request for the MCP server to read.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use tollgate_core::mcp::McpCatalog;
use tollgate_core::vkeys::{KEY_HEADER_NAMES, presented_key};
use tollgate_governance::authorize_key;
use tollgate_governance::snapshot::McpGrants;

use crate::McpSurface;
use crate::call::Caller;
use crate::error::Refusal;
use crate::grant::{Grant, Tools};

/// Narrows a grant to one client's tools.
const INCLUDE_CLIENTS: &str = "x-bf-mcp-include-clients";
/// Narrows a grant to listed tools (`client-tool`, `client-*`).
const INCLUDE_TOOLS: &str = "x-bf-mcp-include-tools";

/// The key a request presents, in the contract's header order.
pub fn key_of(headers: &HeaderMap) -> Option<&str> {
    presented_key(|at| headers.get(KEY_HEADER_NAMES[at])?.to_str().ok())
}

/// Admits a request to `/mcp` (no slug).
pub async fn admit(State(surface): State<McpSurface>, request: Request, next: Next) -> Response {
    admit_to(&surface, None, request, next).await
}

/// Admits a request to `/mcp/{slug}`.
pub async fn admit_slug(State(surface): State<McpSurface>, Path(slug): Path<String>, request: Request, next: Next) -> Response {
    admit_to(&surface, Some(&slug), request, next).await
}

async fn admit_to(surface: &McpSurface, slug: Option<&str>, mut request: Request, next: Next) -> Response {
    match surface.caller(request.headers(), slug) {
        Ok(caller) => {
            request.extensions_mut().insert(Arc::new(caller));
            next.run(request).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

impl McpSurface {
    /// Who is calling and what they may reach, or why not.
    pub fn caller(&self, headers: &HeaderMap, slug: Option<&str>) -> Result<Caller, Refusal> {
        let snapshot = self.0.governor.snapshot();
        let key = key_of(headers);
        let now = tollgate_core::clock::now();
        let access = authorize_key(&snapshot, key, now)?;
        let catalog = self.0.upstreams.catalog();
        let grants: Vec<&McpGrants> = access.copies.iter().map(|c| &*c.mcp).collect();
        let mut grant = Grant::of(&grants, &catalog);
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or_default());
        grant.narrow_by_headers(header(INCLUDE_CLIENTS), header(INCLUDE_TOOLS), &catalog);
        if let Some(slug) = slug {
            let granted_groups: Vec<u64> = access.copies.iter().flat_map(|c| c.mcp.tool_groups.iter().map(|g| g.tool_group_id)).collect();
            let served = slug_grant(&catalog, slug, &granted_groups, &grant)?;
            grant.narrow(&served);
        }
        let key = key.unwrap_or_default().to_owned();
        // rmcp answers on a task of its own: the call's spans name the request's as their parent.
        Ok(Caller { snapshot, key, grant, span: tracing::Span::current() })
    }
}

/// What `/mcp/{slug}` serves: a Virtual MCP's tools (if enabled and granted to one of the
/// caller's copies), else the tools of the client of that name (if `grant` reaches it).
fn slug_grant(catalog: &McpCatalog, slug: &str, granted_groups: &[u64], grant: &Grant) -> Result<Grant, Refusal> {
    if let Some(group) = catalog.virtual_mcps.iter().find(|v| v.endpoint_slug == slug) {
        let granted = u64::try_from(group.id).is_ok_and(|id| granted_groups.contains(&id));
        if !group.enabled || !granted {
            return Err(Refusal::AccessDenied);
        }
        let mut served = Grant::default();
        for part in &group.tools {
            served.add(&part.mcp_client_id, Tools::of(&part.tool_names));
        }
        return Ok(served);
    }
    match catalog.clients.iter().find(|c| c.name == slug) {
        Some(client) if grant.clients.contains_key(&client.client_id) => {
            Ok(Grant { clients: [(client.client_id.clone(), Tools::AllBut(std::collections::BTreeSet::default()))].into() })
        }
        Some(_) => Err(Refusal::AccessDenied),
        None => Err(Refusal::UnknownSlug),
    }
}

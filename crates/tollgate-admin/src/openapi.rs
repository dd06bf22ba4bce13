//! The OpenAPI document, generated from the handlers' annotations, with the deprecated path
//! family added as marked copies of the canonical operations, and the public route serving it.

use std::sync::OnceLock;

use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Deprecated, PathItem};

use crate::routes::{
    ApiKeyDoc, BudgetAlertDoc, ExplainDoc, LogDoc, McpDoc, ModelDoc, PROFILES_ALIAS, PROFILES_CANONICAL, ProfileDoc, ProfileRoleDoc,
    ProviderDoc, RbacDoc, RoleDoc, SpendDoc, SystemDoc, UserDoc, UserProfileDoc, VirtualKeyDoc,
};

#[derive(OpenApi)]
#[openapi(info(
    title = "Tollgate management API",
    description = "Access profiles, management API keys and the permission catalogue. Errors use one envelope.",
    license(name = "Apache-2.0")
))]
struct ApiDoc;

#[derive(OpenApi)]
#[openapi(paths(serve))]
struct DocumentDoc;

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "System", operation_id = "openapi", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn serve() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(document())
}

/// Canonical path prefixes and the deprecated prefixes that serve the same operations.
const ALIASES: [(&str, &str); 4] = [
    (PROFILES_CANONICAL, PROFILES_ALIAS),
    ("/api/governance/rbac/", "/api/"),
    ("/api/governance/users", "/api/users"),
    ("/api/mcp/virtual-mcps", "/api/mcp/tool-groups"),
];

/// The document served at `/openapi.json` (built once).
pub fn document() -> utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(build).clone()
}

fn build() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(SystemDoc::openapi());
    doc.merge(DocumentDoc::openapi());
    doc.merge(ProfileDoc::openapi());
    doc.merge(ApiKeyDoc::openapi());
    doc.merge(RbacDoc::openapi());
    doc.merge(ProfileRoleDoc::openapi());
    doc.merge(RoleDoc::openapi());
    doc.merge(UserDoc::openapi());
    doc.merge(UserProfileDoc::openapi());
    doc.merge(VirtualKeyDoc::openapi());
    doc.merge(ProviderDoc::openapi());
    doc.merge(ModelDoc::openapi());
    doc.merge(McpDoc::openapi());
    doc.merge(LogDoc::openapi());
    doc.merge(SpendDoc::openapi());
    doc.merge(BudgetAlertDoc::openapi());
    doc.merge(ExplainDoc::openapi());
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme("BasicAuth", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    components.add_security_scheme("ManagementBearerAuth", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    doc.security = Some(vec![
        SecurityRequirement::new("BasicAuth", Vec::<String>::new()),
        SecurityRequirement::new("ManagementBearerAuth", Vec::<String>::new()),
    ]);
    optional_bodies(&mut doc);
    let mut aliases = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (canonical, alias) in ALIASES {
            if let Some(rest) = path.strip_prefix(canonical) {
                aliases.push((format!("{alias}{rest}"), deprecated_copy(item)));
            }
        }
    }
    doc.paths.paths.extend(aliases);
    doc
}

/// Operations whose body the published contract marks optional (an absent one reads as `{}`,
/// decision 117); utoipa marks every typed body required.
const OPTIONAL_BODIES: [&str; 2] = ["addUserVirtualKey", "addUserAccessProfileVirtualKey"];

fn optional_bodies(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let Some(op) = item.post.as_mut() else { continue };
        if op.operation_id.as_deref().is_some_and(|id| OPTIONAL_BODIES.contains(&id))
            && let Some(body) = op.request_body.as_mut()
        {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

fn deprecated_copy(item: &PathItem) -> PathItem {
    let mut copy = item.clone();
    for op in [&mut copy.get, &mut copy.put, &mut copy.post, &mut copy.delete, &mut copy.patch].into_iter().flatten() {
        op.deprecated = Some(Deprecated::True);
        op.operation_id = op.operation_id.take().map(|id| format!("{id}Deprecated"));
    }
    copy
}

//! Handlers of `/api/mcp/…`: MCP clients (upstream MCP servers, secrets masked) with their state
//! and tools, and Virtual MCPs on `/api/mcp/virtual-mcps` and the deprecated `/api/mcp/tool-groups`.

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use tollgate_core::mcp_clients::{McpClientRequest, VirtualMcp, VirtualMcpRequest};
use tollgate_core::services::mcp::McpClientEntry;
use utoipa::ToSchema;

use crate::AdminState;
use crate::dto::{MessageResponse, SearchListParams, count, paging};
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Body, Caller, Path, Query};

const CLIENTS: &str = "MCPGateway";
const GROUPS: &str = "VirtualMCPs";

pub(crate) fn routes() -> Router<AdminState> {
    let groups = Router::new()
        .route("/", get(list_groups).post(create_group))
        .route("/{id}", get(read_group).put(replace_group).delete(remove_group));
    Router::new()
        .route("/mcp/clients", get(list))
        .route("/mcp/client", post(create))
        .route("/mcp/client/{id}", put(replace).delete(remove).get(read))
        .route("/mcp/client/{id}/reconnect", post(reconnect))
        .nest("/mcp/virtual-mcps", groups.clone())
        .nest("/mcp/tool-groups", groups)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, read, replace, remove, reconnect, list_groups, create_group, read_group, replace_group, remove_group))]
pub(crate) struct McpDoc;

#[derive(Debug, Serialize, ToSchema)]
pub struct McpClientListResponse {
    pub clients: Vec<McpClientEntry>,
    pub count: u64,
    pub total_count: u64,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VirtualMcpListResponse {
    pub virtual_mcps: Vec<VirtualMcp>,
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VirtualMcpResponse {
    pub virtual_mcp: VirtualMcp,
}

/// Lists MCP clients with their tools and connection state (header and env values masked).
#[utoipa::path(get, path = "/api/mcp/clients", tag = "MCP", operation_id = "listMCPClients", params(SearchListParams),
    responses((status = 200, body = McpClientListResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn list(
    State(s): State<AdminState>,
    caller: Caller,
    Query(q): Query<SearchListParams>,
) -> Result<Json<McpClientListResponse>, ApiError> {
    caller.require(CLIENTS, "View")?;
    let paging = paging(q.limit, q.offset)?;
    let page = s.mcp.list(q.search.as_deref().map(str::trim), paging).await?;
    Ok(Json(McpClientListResponse {
        count: count(page.items.len()),
        clients: page.items,
        total_count: page.total,
        limit: paging.limit.unwrap_or(0),
        offset: paging.offset,
    }))
}

/// Registers an MCP client; Tollgate connects to it in the background.
#[utoipa::path(post, path = "/api/mcp/client", tag = "MCP", operation_id = "addMCPClient", request_body = McpClientRequest,
    responses((status = 200, body = McpClientEntry), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn create(State(s): State<AdminState>, caller: Caller, Body(req): Body<McpClientRequest>) -> Result<Json<McpClientEntry>, ApiError> {
    caller.require(CLIENTS, "Create")?;
    Ok(Json(s.mcp.create(req).await?))
}

#[utoipa::path(get, path = "/api/mcp/client/{id}", tag = "MCP", operation_id = "getMCPClient", params(("id" = String, Path)),
    responses((status = 200, body = McpClientEntry), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn read(State(s): State<AdminState>, caller: Caller, Path(id): Path<String>) -> Result<Json<McpClientEntry>, ApiError> {
    caller.require(CLIENTS, "View")?;
    Ok(Json(s.mcp.get(&id).await?))
}

/// Replaces a client's settings whole; masked secrets sent back keep their stored values.
#[utoipa::path(put, path = "/api/mcp/client/{id}", tag = "MCP", operation_id = "updateMCPClient", params(("id" = String, Path)),
    request_body = McpClientRequest,
    responses((status = 200, body = McpClientEntry), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse),
        (status = 503, body = ErrorResponse)))]
async fn replace(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<McpClientRequest>,
) -> Result<Json<McpClientEntry>, ApiError> {
    caller.require(CLIENTS, "Update")?;
    Ok(Json(s.mcp.replace(&id, req).await?))
}

/// Removes a client that no Virtual MCP names.
#[utoipa::path(delete, path = "/api/mcp/client/{id}", tag = "MCP", operation_id = "removeMCPClient", params(("id" = String, Path)),
    responses((status = 200, body = MessageResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 500, body = ErrorResponse),
        (status = 503, body = ErrorResponse)))]
async fn remove(State(s): State<AdminState>, caller: Caller, Path(id): Path<String>) -> Result<Json<MessageResponse>, ApiError> {
    caller.require(CLIENTS, "Delete")?;
    s.mcp.delete(&id).await?;
    Ok(Json(MessageResponse { message: format!("MCP client '{id}' removed") }))
}

/// Drops the client's connection and opens a new one now.
#[utoipa::path(post, path = "/api/mcp/client/{id}/reconnect", tag = "MCP", operation_id = "reconnectMCPClient",
    params(("id" = String, Path)),
    responses((status = 200, body = McpClientEntry), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn reconnect(State(s): State<AdminState>, caller: Caller, Path(id): Path<String>) -> Result<Json<McpClientEntry>, ApiError> {
    caller.require(CLIENTS, "Update")?;
    Ok(Json(s.mcp.reconnect(&id).await?))
}

/// Lists Virtual MCPs (also at the deprecated `/api/mcp/tool-groups`).
#[utoipa::path(get, path = "/api/mcp/virtual-mcps", tag = "MCP", operation_id = "listVirtualMCPs",
    responses((status = 200, body = VirtualMcpListResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn list_groups(State(s): State<AdminState>, caller: Caller) -> Result<Json<VirtualMcpListResponse>, ApiError> {
    caller.require(GROUPS, "View")?;
    let groups = s.mcp.list_groups().await?;
    Ok(Json(VirtualMcpListResponse { count: count(groups.len()), virtual_mcps: groups }))
}

#[utoipa::path(post, path = "/api/mcp/virtual-mcps", tag = "MCP", operation_id = "createVirtualMCP", request_body = VirtualMcpRequest,
    responses((status = 200, body = VirtualMcpResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn create_group(
    State(s): State<AdminState>,
    caller: Caller,
    Body(req): Body<VirtualMcpRequest>,
) -> Result<Json<VirtualMcpResponse>, ApiError> {
    caller.require(GROUPS, "Create")?;
    Ok(Json(VirtualMcpResponse { virtual_mcp: s.mcp.create_group(req).await? }))
}

#[utoipa::path(get, path = "/api/mcp/virtual-mcps/{id}", tag = "MCP", operation_id = "getVirtualMCP", params(("id" = i64, Path)),
    responses((status = 200, body = VirtualMcpResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse),
        (status = 503, body = ErrorResponse)))]
async fn read_group(State(s): State<AdminState>, caller: Caller, Path(id): Path<i64>) -> Result<Json<VirtualMcpResponse>, ApiError> {
    caller.require(GROUPS, "View")?;
    Ok(Json(VirtualMcpResponse { virtual_mcp: s.mcp.get_group(id).await? }))
}

/// Replaces a Virtual MCP whole (its `endpoint_slug` cannot change).
#[utoipa::path(put, path = "/api/mcp/virtual-mcps/{id}", tag = "MCP", operation_id = "updateVirtualMCP", params(("id" = i64, Path)),
    request_body = VirtualMcpRequest,
    responses((status = 200, body = VirtualMcpResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse),
        (status = 503, body = ErrorResponse)))]
async fn replace_group(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<i64>,
    Body(req): Body<VirtualMcpRequest>,
) -> Result<Json<VirtualMcpResponse>, ApiError> {
    caller.require(GROUPS, "Update")?;
    Ok(Json(VirtualMcpResponse { virtual_mcp: s.mcp.replace_group(id, req).await? }))
}

#[utoipa::path(delete, path = "/api/mcp/virtual-mcps/{id}", tag = "MCP", operation_id = "deleteVirtualMCP", params(("id" = i64, Path)),
    responses((status = 200, body = MessageResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse),
        (status = 503, body = ErrorResponse)))]
async fn remove_group(State(s): State<AdminState>, caller: Caller, Path(id): Path<i64>) -> Result<Json<MessageResponse>, ApiError> {
    caller.require(GROUPS, "Delete")?;
    s.mcp.delete_group(id).await?;
    Ok(Json(MessageResponse { message: format!("Virtual MCP {id} removed") }))
}

//! Handlers of `/api/governance/budget-alerts…`: the budget-alert rules of access profiles (a
//! Tollgate extension). The signing secret is write-only; answers say only `secret_set`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use tollgate_core::alerts::{AlertRuleRequest, AlertRuleView};
use tollgate_core::usage::ChangeScope;
use utoipa::{IntoParams, ToSchema};

use crate::dto::{count, paging};
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Body, Caller, Path, Query, profile_id};
use crate::{AdminState, changed_users};

/// Rules are part of a profile's governance: whoever may change profiles may change them.
const RESOURCE: &str = "AccessProfiles";

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/governance/budget-alerts", get(list).post(create))
        .route("/governance/budget-alerts/{id}", get(read).put(replace).delete(remove))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, read, replace, remove))]
pub(crate) struct BudgetAlertDoc;

/// Query of the rule list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertListParams {
    /// Page size, at most 1000; omitted or 0 returns every match.
    #[param(minimum = 0)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Only the rules of this access profile.
    #[param(minimum = 1)]
    pub access_profile_id: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertRuleListResponse {
    pub budget_alerts: Vec<AlertRuleView>,
    pub count: u64,
    pub total_count: u64,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertRuleResponse {
    pub budget_alert: AlertRuleView,
}

/// Rule writes change no key, copy or override: governance re-reads nobody.
fn nobody() -> Extension<ChangeScope> {
    changed_users(Vec::<String>::new())
}

/// Lists budget-alert rules by id, of one profile or all, paged.
#[utoipa::path(get, path = "/api/governance/budget-alerts", tag = "Budget Alerts", operation_id = "listBudgetAlerts", params(AlertListParams),
    responses((status = 200, body = AlertRuleListResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn list(
    State(s): State<AdminState>,
    caller: Caller,
    Query(q): Query<AlertListParams>,
) -> Result<Json<AlertRuleListResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    let paging = paging(q.limit, q.offset)?;
    let page = s.alerts.list(q.access_profile_id.map(profile_id), paging).await?;
    Ok(Json(AlertRuleListResponse {
        count: count(page.items.len()),
        budget_alerts: page.items,
        total_count: page.total,
        limit: paging.limit.unwrap_or(0),
        offset: paging.offset,
    }))
}

/// Defines a rule: when a copy of the profile reaches a threshold of one of its budgets in a
/// window, a signed webhook is sent once.
#[utoipa::path(post, path = "/api/governance/budget-alerts", tag = "Budget Alerts", operation_id = "createBudgetAlert",
    request_body = AlertRuleRequest,
    responses((status = 201, body = AlertRuleResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
        (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn create(
    State(s): State<AdminState>,
    caller: Caller,
    Body(req): Body<AlertRuleRequest>,
) -> Result<(StatusCode, Extension<ChangeScope>, Json<AlertRuleResponse>), ApiError> {
    caller.require(RESOURCE, "Create")?;
    let budget_alert = s.alerts.create(&caller.0, req).await?;
    Ok((StatusCode::CREATED, nobody(), Json(AlertRuleResponse { budget_alert })))
}

#[utoipa::path(get, path = "/api/governance/budget-alerts/{id}", tag = "Budget Alerts", operation_id = "getBudgetAlert",
    params(("id" = i64, Path)),
    responses((status = 200, body = AlertRuleResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn read(State(s): State<AdminState>, caller: Caller, Path(id): Path<i64>) -> Result<Json<AlertRuleResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    Ok(Json(AlertRuleResponse { budget_alert: s.alerts.get(id).await? }))
}

/// Replaces a rule whole; an absent `secret` keeps the stored one.
#[utoipa::path(put, path = "/api/governance/budget-alerts/{id}", tag = "Budget Alerts", operation_id = "updateBudgetAlert",
    params(("id" = i64, Path)), request_body = AlertRuleRequest,
    responses((status = 200, body = AlertRuleResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn replace(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<i64>,
    Body(req): Body<AlertRuleRequest>,
) -> Result<(Extension<ChangeScope>, Json<AlertRuleResponse>), ApiError> {
    caller.require(RESOURCE, "Update")?;
    let budget_alert = s.alerts.replace(&caller.0, id, req).await?;
    Ok((nobody(), Json(AlertRuleResponse { budget_alert })))
}

/// Deletes a rule; its pending alerts are then given up as failed.
#[utoipa::path(delete, path = "/api/governance/budget-alerts/{id}", tag = "Budget Alerts", operation_id = "deleteBudgetAlert",
    params(("id" = i64, Path)),
    responses((status = 200, body = AlertRuleResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn remove(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<(Extension<ChangeScope>, Json<AlertRuleResponse>), ApiError> {
    caller.require(RESOURCE, "Delete")?;
    Ok((nobody(), Json(AlertRuleResponse { budget_alert: s.alerts.delete(&caller.0, id).await? })))
}

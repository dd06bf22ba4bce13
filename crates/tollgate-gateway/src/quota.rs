//! `GET /api/governance/virtual-keys/quota`: the presented virtual key's own budgets, rate limits
//! and current usage (governance's `Quota`), refused as an inference request would be when the
//! key is missing, unknown, inactive or expired.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use tollgate_governance::quota::Quota;

use crate::engine::Gateway;
use crate::error::{GatewayError, RequestType};
use crate::keys::presented_key;

pub async fn quota(State(gw): State<Gateway>, headers: HeaderMap) -> Result<Json<Quota>, GatewayError> {
    let quota = gw.0.governor.quota(presented_key(&headers)).await.map_err(|d| GatewayError::from(d).for_request(RequestType::Quota))?;
    Ok(Json(quota))
}

//! `GET /v1/models`: the models the caller's key may use, as `provider/model` ids. A read-only
//! call: identity and provider/model filtering apply, budgets and limits do not.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use tollgate_governance::{Denial, DenialKind};

use crate::engine::Gateway;
use crate::error::{GatewayError, RequestType};
use crate::keys::presented_key;

#[derive(Debug, Deserialize)]
pub struct ModelsQuery {
    pub provider: Option<String>,
}

pub async fn list_models(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    Query(query): Query<ModelsQuery>,
) -> Result<Json<Value>, GatewayError> {
    let ids = allowed_models(&gw, &headers, query.provider.as_deref()).map_err(|e| e.for_request(RequestType::ListModels))?;
    let data: Vec<Value> = ids.into_iter().map(|(p, m)| json!({"id": format!("{p}/{m}"), "object": "model", "owned_by": p})).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// (provider, model) pairs the caller's key may use, of one provider if `wanted` names it.
pub(crate) fn allowed_models(gw: &Gateway, headers: &HeaderMap, wanted: Option<&str>) -> Result<BTreeSet<(String, String)>, GatewayError> {
    let governor = &gw.0.governor;
    let snapshot = governor.snapshot();
    let now = tollgate_core::clock::now();
    // Identity checks are the ones authorize makes; a probe for no provider gives the same answers.
    let key = presented_key(headers);
    // Asked of `authorize` directly: the probe's expected `ProviderBlocked` is no refusal to count.
    let user = match tollgate_governance::authorize::authorize(&snapshot, key, "", "", now) {
        Err(e) if e.kind == DenialKind::ProviderBlocked => {
            key.and_then(|k| snapshot.key(&tollgate_core::auth::sha256(k))).map_or("", |k| &*k.user_id)
        }
        Err(e) => {
            tollgate_governance::meters::denied("models", e.kind.name());
            return Err(e.into());
        }
        Ok(access) => access.user_id,
    };
    let mut ids = BTreeSet::new();
    let mut providers = BTreeSet::new();
    let mut served;
    for copy in snapshot.copies(user).iter().filter(|c| c.live_at(now)) {
        for config in &copy.configs {
            providers.insert(config.provider.to_string());
            if wanted.is_some_and(|w| w != &*config.provider) {
                continue;
            }
            // Every model: those the provider serves, from the API-managed provider of that name
            // if there is one (it takes precedence, as when a request is routed), else the file's.
            if config.models.every {
                served = gw.provider(&config.provider);
                let models = served.as_ref().map_or(&[][..], |p| p.models.as_slice());
                ids.extend(models.iter().filter(|m| *m != "*").map(|m| (config.provider.to_string(), m.clone())));
            } else {
                ids.extend(config.models.listed.iter().filter(|m| &***m != "*").map(|m| (config.provider.to_string(), m.to_string())));
            }
        }
    }
    if let Some(w) = wanted
        && !providers.contains(w)
    {
        // The answer names no model: none was asked for.
        let mut refused = GatewayError::from(Denial::new(DenialKind::ProviderBlocked, w, "", now));
        (refused.provider, refused.model) = (None, None);
        return Err(refused);
    }
    Ok(ids)
}

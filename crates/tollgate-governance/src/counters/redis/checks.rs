//! Start-up checks of the Redis holding the counters: warns, loudly, when its settings let it lose
//! counters (no persistence) or drop them under memory pressure (an eviction policy), or when it
//! does not say (a managed Redis that refuses `CONFIG`).

use redis::aio::ConnectionLike;

/// What a Redis's persistence and eviction settings put at risk, one sentence each.
pub(super) fn risks(appendonly: &str, save: &str, policy: &str) -> Vec<String> {
    let mut risks = Vec::new();
    if appendonly != "yes" {
        risks.push(if save.trim().is_empty() {
            "Redis persistence is off (appendonly no, save \"\"): a restart empties every counter; lost lines are rebuilt \
             from stored usage, which misses the charges of about the last second and the reservations in flight"
                .to_owned()
        } else {
            format!(
                "Redis keeps only snapshots (appendonly no, save \"{save}\"): a restart brings counters back as they were at \
                 the last snapshot, lower than what was spent since, and that goes unnoticed; set appendonly yes"
            )
        });
    }
    if policy != "noeviction" {
        risks.push(format!(
            "Redis maxmemory-policy is {policy}, not noeviction: under memory pressure it may evict counter lines (rebuilt \
             from stored usage) and reservations (whose room then stays taken until the line expires)"
        ));
    }
    risks
}

/// One `CONFIG GET` value.
async fn config(connection: &mut (impl ConnectionLike + Send), name: &str) -> Result<String, redis::RedisError> {
    let pairs: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query_async(connection).await?;
    Ok(pairs.get(1).cloned().unwrap_or_default())
}

/// The settings `risks` reads: `appendonly`, `save`, `maxmemory-policy`.
pub(super) async fn durability(connection: &mut (impl ConnectionLike + Send)) -> Result<(String, String, String), redis::RedisError> {
    Ok((config(connection, "appendonly").await?, config(connection, "save").await?, config(connection, "maxmemory-policy").await?))
}

/// Logs a warning for every risk of the Redis behind `connection`, or that it could not be checked.
pub(super) async fn warn_about_durability(connection: &mut (impl ConnectionLike + Send)) {
    match durability(connection).await {
        Ok((appendonly, save, policy)) => {
            for risk in risks(&appendonly, &save, &policy) {
                tracing::warn!("{risk}");
            }
        }
        Err(e) => tracing::warn!(
            error = %e,
            "could not check Redis persistence and eviction (CONFIG GET refused); make sure it persists every write \
             (appendonly yes) and never evicts (maxmemory-policy noeviction), or a restart or memory pressure loses counters"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::risks;

    #[test]
    fn durable_settings_carry_no_risk_and_every_other_one_is_named() {
        assert!(risks("yes", "", "noeviction").is_empty());
        assert!(risks("yes", "3600 1", "noeviction").is_empty());
        let off = risks("no", "", "noeviction");
        assert!(off.len() == 1 && off[0].contains("persistence is off"), "{off:?}");
        let snapshots = risks("no", "3600 1 300 100", "noeviction");
        assert!(snapshots.len() == 1 && snapshots[0].contains("only snapshots"), "{snapshots:?}");
        let evicting = risks("yes", "", "allkeys-lru");
        assert!(evicting.len() == 1 && evicting[0].contains("allkeys-lru, not noeviction"), "{evicting:?}");
        assert_eq!(risks("no", "", "volatile-lru").len(), 2);
    }
}

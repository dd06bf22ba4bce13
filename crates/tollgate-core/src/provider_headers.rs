//! Named secrets at rest and on the wire — a provider's `network_config.extra_headers`, an MCP
//! client's headers and environment: values are sealed before
//! they are stored (they often carry credentials, like keys), opened only for the data plane,
//! and served redacted like key values; a redacted value sent back keeps the stored one.

use std::collections::BTreeMap;

use crate::auth::Secret;
use crate::error::CoreError;
use crate::providers::{NetworkConfig, redact};
use crate::vkeys::Sealer;

/// Marks a stored header value as sealed; a value stored before values were sealed has none.
const SEALED: &str = "sealed:";

/// The headers as stored: every value sealed. A value that equals the redacted form of the
/// stored value of the same header keeps the stored one (a client sends back what it read).
pub(crate) fn sealed(network: &mut NetworkConfig, stored: Option<&NetworkConfig>, sealer: &Sealer) -> Result<(), CoreError> {
    network.extra_headers = sealed_map(std::mem::take(&mut network.extra_headers), stored.map(|s| &s.extra_headers), sealer)?;
    Ok(())
}

/// Named secret values as stored: every value sealed; a value equal to the redacted form of the
/// stored value of the same name keeps the stored one.
pub(crate) fn sealed_map(
    values: BTreeMap<String, String>,
    stored: Option<&BTreeMap<String, String>>,
    sealer: &Sealer,
) -> Result<BTreeMap<String, String>, CoreError> {
    let mut out = BTreeMap::new();
    for (name, value) in values {
        let kept = stored.and_then(|s| s.get(&name)).filter(|old| open(old, sealer).is_some_and(|plain| redact(plain.expose()) == value));
        let value = match kept {
            Some(old) if old.starts_with(SEALED) => old.clone(),
            Some(old) => format!("{SEALED}{}", sealer.seal(old)?),
            None => format!("{SEALED}{}", sealer.seal(&value)?),
        };
        out.insert(name, value);
    }
    Ok(out)
}

/// A stored header value in clear: a sealed one opened (`None` if it cannot be), an older
/// unsealed one as it is.
pub fn open(stored: &str, sealer: &Sealer) -> Option<Secret> {
    match stored.strip_prefix(SEALED) {
        Some(closed) => sealer.open(closed).ok(),
        None => Some(Secret::new(stored)),
    }
}

/// The headers as served: every value redacted (`****`, or its first and last four characters).
pub(crate) fn redacted(network: &mut NetworkConfig, sealer: &Sealer) {
    redacted_map(&mut network.extra_headers, sealer);
}

/// Named secret values as served: each redacted.
pub(crate) fn redacted_map(values: &mut BTreeMap<String, String>, sealer: &Sealer) {
    for value in values.values_mut() {
        *value = open(value, sealer).map_or_else(|| "****".to_owned(), |plain| redact(plain.expose()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(pairs: &[(&str, &str)]) -> NetworkConfig {
        NetworkConfig { extra_headers: pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(), ..NetworkConfig::default() }
    }

    #[test]
    fn header_values_are_sealed_at_rest_served_redacted_and_a_redacted_value_sent_back_keeps_the_secret() {
        let sealer = Sealer::new(&Sealer::generate_key());
        let mut stored = network(&[("api-key", "azure-secret-0123456789"), ("x-team", "platform")]);
        sealed(&mut stored, None, &sealer).unwrap_or_else(|e| panic!("{e}"));
        assert!(stored.extra_headers.values().all(|v| v.starts_with(SEALED) && !v.contains("secret") && !v.contains("platform")));
        let opened: Vec<String> = stored.extra_headers.values().filter_map(|v| open(v, &sealer)).map(|s| s.expose().to_owned()).collect();
        assert_eq!(opened, ["azure-secret-0123456789", "platform"]);

        let mut served = stored.clone();
        redacted(&mut served, &sealer);
        assert_eq!(served, network(&[("api-key", "azur…6789"), ("x-team", "****")]));

        let mut again = served.clone();
        again.extra_headers.insert("x-team".into(), "infra".into());
        sealed(&mut again, Some(&stored), &sealer).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.extra_headers["api-key"], stored.extra_headers["api-key"], "the redacted value keeps the stored secret");
        assert_eq!(open(&again.extra_headers["x-team"], &sealer).map(|s| s.expose().to_owned()).as_deref(), Some("infra"));
    }

    #[test]
    fn a_value_stored_before_sealing_is_read_as_it_is_and_sealed_when_kept() {
        let sealer = Sealer::new(&Sealer::generate_key());
        let legacy = network(&[("x-team", "platform")]);
        assert_eq!(open("platform", &sealer).map(|s| s.expose().to_owned()).as_deref(), Some("platform"));
        let mut sent_back = network(&[("x-team", "****")]);
        sealed(&mut sent_back, Some(&legacy), &sealer).unwrap_or_else(|e| panic!("{e}"));
        let value = &sent_back.extra_headers["x-team"];
        assert!(value.starts_with(SEALED));
        assert_eq!(open(value, &sealer).map(|s| s.expose().to_owned()).as_deref(), Some("platform"));
    }
}

//! Prices per model, in integer micro-dollars per million tokens: a catalog shipped with the
//! binary (`pricing.json`), overridable by the operator; cost is rounded up to a micro-dollar.

use std::collections::HashMap;

use serde::Deserialize;
use tollgate_core::money::Money;

use crate::usage::Usage;

/// The shipped catalog (see its `source` and `as_of` members).
const CATALOG: &str = include_str!("pricing.json");

/// Input and output price of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Price {
    /// USD per million input tokens, in micro-dollars (e.g. $2.50 → 2_500_000).
    pub input_per_mtok: u64,
    /// USD per million output tokens, in micro-dollars.
    pub output_per_mtok: u64,
    /// USD per million prompt tokens an OpenAI-compatible provider served from its cache, in
    /// micro-dollars; without it they cost the full input price (never less than billed).
    #[serde(default)]
    pub cached_input_per_mtok: Option<u64>,
}

impl Price {
    /// Cost of a call without cached prompt tokens, rounded up to the next micro-dollar.
    pub fn cost(self, input_tokens: u64, output_tokens: u64) -> Money {
        self.cost_of(&Usage::plain(input_tokens, output_tokens))
    }

    /// Cost of a call, Anthropic's prompt-cache tokens at their multiples of the input price
    /// (writes 1.25×, one-hour writes 2×, reads 0.1×) and OpenAI's cached prompt tokens at the
    /// cached-input price, rounded up to the next micro-dollar once, at the end.
    pub fn cost_of(self, usage: &Usage) -> Money {
        // In fortieths of a token, so every multiple is an integer.
        let input_40ths = u128::from(usage.input) * 40
            + u128::from(usage.cache_write) * 50
            + u128::from(usage.cache_write_1h) * 80
            + u128::from(usage.cache_read) * 4;
        let cached_rate = self.cached_input_per_mtok.unwrap_or(self.input_per_mtok);
        let nanos_40 = input_40ths * u128::from(self.input_per_mtok)
            + u128::from(usage.cached_input) * 40 * u128::from(cached_rate)
            + u128::from(usage.output) * 40 * u128::from(self.output_per_mtok);
        let micros = nanos_40.div_ceil(40 * 1_000_000);
        Money::from_micros(i64::try_from(micros).unwrap_or(i64::MAX)).unwrap_or(Money::ZERO)
    }
}

#[derive(Debug, Deserialize)]
struct CatalogFile {
    models: HashMap<String, Price>,
}

/// The shipped catalog's prices by `provider/model`.
fn shipped() -> Result<HashMap<String, Price>, String> {
    serde_json::from_str::<CatalogFile>(CATALOG).map(|file| file.models).map_err(|e| format!("shipped pricing catalog: {e}"))
}

/// The `provider/model` names of the shipped catalog (not the operator's overrides), sorted.
pub fn catalog_models() -> Result<Vec<String>, String> {
    let mut names: Vec<String> = shipped()?.into_keys().collect();
    names.sort();
    Ok(names)
}

/// What to do with a model that has no price while a budget applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnpricedModels {
    /// Refuse the request: it could not be charged (the safe default).
    #[default]
    Deny,
    /// Serve it at zero cost.
    Free,
}

/// Prices by `provider/model`.
#[derive(Debug, Clone)]
pub struct Pricing {
    prices: HashMap<String, Price>,
    /// The same prices by provider, then model: the exact look-up every request makes, without
    /// building the `provider/model` name.
    exact: hashbrown::HashMap<String, hashbrown::HashMap<String, Price>>,
    pub unpriced: UnpricedModels,
}

impl Pricing {
    /// The shipped catalog with the operator's prices laid over it.
    pub fn new(overrides: HashMap<String, Price>, unpriced: UnpricedModels) -> Result<Pricing, String> {
        let mut prices = shipped()?;
        prices.extend(overrides);
        let mut exact: hashbrown::HashMap<String, hashbrown::HashMap<String, Price>> = hashbrown::HashMap::new();
        for (name, price) in &prices {
            if let Some((provider, model)) = name.split_once('/') {
                exact.entry(provider.to_owned()).or_default().insert(model.to_owned(), *price);
            }
        }
        Ok(Pricing { prices, exact, unpriced })
    }

    /// The price of `provider/model`, also matching dated model names by their undated prefix
    /// (`gpt-4o-2024-08-06` is priced as `gpt-4o`).
    pub fn price(&self, provider: &str, model: &str) -> Option<Price> {
        if let Some(p) = self.exact.get(provider).and_then(|models| models.get(model)) {
            return Some(*p);
        }
        let exact = format!("{provider}/{model}");
        self.prices
            .iter()
            .filter(|(name, _)| exact.starts_with(name.as_str()) && exact.as_bytes().get(name.len()) == Some(&b'-'))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_prompt_tokens_cost_their_multiples_of_the_input_price() {
        let p = Price { input_per_mtok: 3_000_000, output_per_mtok: 15_000_000, cached_input_per_mtok: None };
        let usage = Usage {
            input: 1_000_000,
            output: 0,
            cache_write: 1_000_000,
            cache_write_1h: 1_000_000,
            cache_read: 1_000_000,
            cached_input: 0,
        };
        assert_eq!(p.cost_of(&usage).micros(), 3_000_000 + 3_750_000 + 6_000_000 + 300_000);
        assert_eq!(p.cost_of(&Usage { cache_read: 1, ..Usage::default() }).micros(), 1, "0.3 micro-dollars round up");
    }

    #[test]
    fn openai_cached_prompt_tokens_cost_the_cached_price_or_else_the_full_input_price() {
        let usage = Usage { input: 1_000_000, output: 1_000_000, cached_input: 1_000_000, ..Usage::default() };
        let priced = Price { input_per_mtok: 2_500_000, output_per_mtok: 10_000_000, cached_input_per_mtok: Some(1_250_000) };
        assert_eq!(priced.cost_of(&usage).micros(), 2_500_000 + 1_250_000 + 10_000_000);
        let unpriced = Price { cached_input_per_mtok: None, ..priced };
        assert_eq!(unpriced.cost_of(&usage).micros(), 2_500_000 + 2_500_000 + 10_000_000, "no cached price: the full input price");
        assert_eq!(shipped().ok().and_then(|c| c.get("openai/gpt-4o").and_then(|p| p.cached_input_per_mtok)), Some(1_250_000));
    }

    #[test]
    fn cost_is_exact_and_rounds_up() {
        let p = Price { input_per_mtok: 2_500_000, output_per_mtok: 10_000_000, cached_input_per_mtok: None };
        assert_eq!(p.cost(1_000_000, 0).micros(), 2_500_000);
        assert_eq!(p.cost(1, 1).micros(), 13, "12.5 micro-dollars round up");
        assert_eq!(p.cost(0, 0).micros(), 0);
    }

    #[test]
    fn catalog_loads_and_dated_names_fall_back_to_their_family() {
        let pricing = Pricing::new(HashMap::new(), UnpricedModels::Deny).unwrap_or_else(|e| panic!("{e}"));
        assert!(pricing.price("openai", "gpt-4o").is_some());
        assert_eq!(pricing.price("openai", "gpt-4o-2024-08-06"), pricing.price("openai", "gpt-4o"));
        assert_ne!(pricing.price("openai", "gpt-4o-mini"), pricing.price("openai", "gpt-4o"), "the longest prefix wins");
        assert!(pricing.price("anthropic", "claude-3-5-haiku-20241022").is_some());
        assert!(pricing.price("openai", "unknown-model").is_none());
    }

    #[test]
    fn catalog_model_names_are_sorted_provider_slash_model() {
        let names = catalog_models().unwrap_or_else(|e| panic!("{e}"));
        assert!(names.contains(&"openai/gpt-4o".to_owned()));
        assert!(names.is_sorted());
        assert!(names.iter().all(|n| n.split_once('/').is_some_and(|(p, m)| !p.is_empty() && !m.is_empty())));
    }

    #[test]
    fn operator_prices_override_the_catalog() {
        let mine =
            HashMap::from([("openai/gpt-4o".to_owned(), Price { input_per_mtok: 1, output_per_mtok: 2, cached_input_per_mtok: None })]);
        let pricing = Pricing::new(mine, UnpricedModels::Deny).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pricing.price("openai", "gpt-4o"), Some(Price { input_per_mtok: 1, output_per_mtok: 2, cached_input_per_mtok: None }));
    }
}

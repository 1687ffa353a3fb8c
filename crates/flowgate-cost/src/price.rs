//! What an answer cost: its tokens at its model's prices, in decimal dollars (never a
//! float for money).
//!
//! Prices are per million tokens ([`ModelPrice`], the catalog's, with the config's
//! overrides). The prompt is priced in three parts, as the providers bill it: the tokens
//! neither read from nor written to the provider's prompt cache at the input price, those
//! read at the cache-read price, those written at the cache-write price; the completion at
//! the output price. An answer served from flowgate's own cache costs nothing and saved
//! what its stored usage would have cost.

use flowgate_config::ModelPrice;
use rust_decimal::Decimal;

use crate::usage::Usage;

/// A million, the unit prices are given per.
const MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// The cost of `usage` at `price`, in US dollars, exact (saturating at
/// [`Decimal::MAX`], which no real bill reaches).
pub fn cost(usage: &Usage, price: &ModelPrice) -> Decimal {
    let parts = [
        (usage.uncached_prompt(), price.input_usd_per_mtok),
        (usage.cache_read_tokens, price.cache_read_usd_per_mtok),
        (usage.cache_write_tokens, price.cache_write_usd_per_mtok),
        (usage.completion_tokens, price.output_usd_per_mtok),
    ];
    let mut micro_total = Decimal::ZERO;
    for (tokens, per_mtok) in parts {
        let part = Decimal::from(tokens)
            .checked_mul(per_mtok)
            .unwrap_or(Decimal::MAX);
        micro_total = micro_total.checked_add(part).unwrap_or(Decimal::MAX);
    }
    (micro_total / MILLION).normalize()
}

/// `usd` in whole billionths of a dollar, rounded half to even (for integer counters:
/// metrics and shared budgets). Negative amounts count 0.
pub fn nanos(usd: Decimal) -> u64 {
    use rust_decimal::prelude::ToPrimitive;
    (usd * Decimal::from(1_000_000_000u64))
        .round()
        .to_u64()
        .unwrap_or(if usd.is_sign_negative() { 0 } else { u64::MAX })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn sonnet() -> ModelPrice {
        ModelPrice {
            input_usd_per_mtok: d("3"),
            output_usd_per_mtok: d("15"),
            cache_read_usd_per_mtok: d("0.30"),
            cache_write_usd_per_mtok: d("3.75"),
        }
    }

    #[test]
    fn the_prompt_is_priced_in_its_cached_and_uncached_parts() {
        // 10,000 prompt tokens: 6,000 read from the provider's cache, 3,000 written, 1,000
        // neither; 500 out. 1,000 × 3 + 6,000 × 0.30 + 3,000 × 3.75 + 500 × 15, per million.
        let u = Usage {
            prompt_tokens: 10_000,
            completion_tokens: 500,
            cache_read_tokens: 6_000,
            cache_write_tokens: 3_000,
        };
        assert_eq!(cost(&u, &sonnet()), d("0.02355"));
        // Without prompt caching, the same prompt at the input price.
        let plain = Usage {
            prompt_tokens: 10_000,
            completion_tokens: 500,
            ..Usage::default()
        };
        assert_eq!(cost(&plain, &sonnet()), d("0.0375"));
    }

    #[test]
    fn sums_of_small_costs_are_exact() {
        // gpt-4o-mini: 0.15 / 0.60 per million. One token in is 0.00000015 dollars; a
        // million requests of it are 0.15 exactly, where floats drift.
        let mini = ModelPrice {
            input_usd_per_mtok: d("0.15"),
            output_usd_per_mtok: d("0.60"),
            cache_read_usd_per_mtok: d("0.075"),
            cache_write_usd_per_mtok: d("0.15"),
        };
        let one = Usage {
            prompt_tokens: 1,
            ..Usage::default()
        };
        let c = cost(&one, &mini);
        assert_eq!(c, d("0.00000015"));
        let total: Decimal = (0..1_000_000).map(|_| c).sum();
        assert_eq!(total, d("0.15"));
        assert_eq!(nanos(c), 150);
        assert_eq!(nanos(d("0.0000000015")), 2);
        assert_eq!(nanos(d("-1")), 0);
    }

    #[test]
    fn no_usage_costs_nothing_and_huge_counts_do_not_overflow() {
        assert_eq!(cost(&Usage::default(), &sonnet()), Decimal::ZERO);
        let huge = Usage {
            prompt_tokens: u64::MAX,
            completion_tokens: u64::MAX,
            ..Usage::default()
        };
        assert!(cost(&huge, &sonnet()) > d("1000000000000"));
    }
}

//! Smooth weighted round robin (nginx's): each turn, every endpoint gains its weight, the
//! richest is chosen and pays the total. Over one cycle of `Σ weights` turns each endpoint
//! is chosen exactly `weight` times, spread out. The cycle is computed once per pool;
//! picking walks it with an atomic counter.

/// One cycle of endpoint indices.
pub fn cycle(weights: &[u32]) -> Vec<u32> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(weights) {
            *c += i64::from(*w);
        }
        let Some((best, _)) = current
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
        else {
            break;
        };
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nginx_example() {
        // nginx's documented sequence for weights 5, 1, 1: a a b a c a a.
        assert_eq!(cycle(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
    }

    proptest! {
        #[test]
        fn a_cycle_matches_the_weights_exactly(weights in prop::collection::vec(1u32..20, 1..8)) {
            let c = cycle(&weights);
            prop_assert_eq!(c.len() as u32, weights.iter().sum::<u32>());
            for (i, w) in weights.iter().enumerate() {
                prop_assert_eq!(c.iter().filter(|&&x| x as usize == i).count() as u32, *w);
            }
        }
    }
}

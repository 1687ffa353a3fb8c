//! The consistent-hash ring: 160 points per unit of weight for each endpoint, at the XXH3 of
//! `"<index>#<point>"`, so that every replica builds the same ring; a key goes to the first
//! point at or after its own hash. Adding an endpoint moves about `1/n` of the keys.

use xxhash_rust::xxh3::xxh3_64;

const POINTS: u32 = 160;

#[derive(Debug, Default)]
pub struct Ring {
    /// (position, endpoint), sorted by position.
    points: Box<[(u64, u32)]>,
    endpoints: usize,
}

impl Ring {
    pub fn new(weights: &[u32]) -> Self {
        let mut points: Vec<(u64, u32)> = weights
            .iter()
            .enumerate()
            .flat_map(|(i, w)| {
                (0..POINTS * w.max(&1))
                    .map(move |p| (xxh3_64(format!("{i}#{p}").as_bytes()), i as u32))
            })
            .collect();
        points.sort_unstable();
        Ring {
            points: points.into_boxed_slice(),
            endpoints: weights.len(),
        }
    }

    /// The endpoints in ring order from `key`'s place, each once (past the 256th endpoint
    /// of a pool, possibly more than once: harmless, and no pool is that large).
    pub fn walk(&self, key: &[u8]) -> impl Iterator<Item = usize> + '_ {
        let h = xxh3_64(key);
        let start = self.points.partition_point(|(pos, _)| *pos < h);
        let n = self.points.len();
        let mut seen = [0u64; 4];
        (0..n)
            .map(move |d| self.points[(start + d) % n].1 as usize)
            .filter(move |&i| {
                let Some(word) = seen.get_mut(i / 64) else {
                    return true;
                };
                let bit = 1u64 << (i % 64);
                let new = *word & bit == 0;
                *word |= bit;
                new
            })
            .take(self.endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn adding_an_endpoint_moves_about_one_nth_of_the_keys(n in 2usize..12) {
            let before = Ring::new(&vec![1; n]);
            let after = Ring::new(&vec![1; n + 1]);
            let keys = 4000;
            let moved = (0..keys)
                .filter(|k| {
                    let key = format!("key-{k}");
                    before.walk(key.as_bytes()).next() != after.walk(key.as_bytes()).next()
                })
                .count();
            // Ideal: keys / (n + 1); allow for the ring's unevenness.
            let ideal = keys as f64 / (n + 1) as f64;
            prop_assert!((moved as f64) < ideal * 1.5, "moved {} of {}, ideal {:.0}", moved, keys, ideal);
            // And every key that moved went to the new endpoint.
            for k in 0..keys {
                let key = format!("key-{k}");
                let (b, a) = (before.walk(key.as_bytes()).next(), after.walk(key.as_bytes()).next());
                prop_assert!(b == a || a == Some(n));
            }
        }
    }
}

//! Priority levels and locality: which endpoints a new request may go to before the
//! strategy picks among them (Envoy's priority load and zone-aware routing, simplified).
//!
//! Endpoints have a priority (0 first) and a region. Each level takes traffic in proportion
//! to how much of it can take requests, times the overprovisioning factor (1.4: a level
//! with 72% of its endpoints usable still takes all the traffic), capped at 100%, and the
//! rest spills to the next level; when the levels' shares add up to less than 100%, they
//! are scaled up to it. Within the chosen level, a request whose region (the client's, or
//! the gateway's own) some of the level's endpoints share goes to those by the same rule:
//! all of it while enough of them are usable, spilling to the level's other regions as they
//! fail. Nothing here is state: each pick reads the endpoints' breakers.

/// A pool's levels, when it has more than one or its endpoints have regions.
#[derive(Debug, Clone)]
pub struct Levels {
    /// Each endpoint's level (index into `levels`) and region.
    level_of: Box<[usize]>,
    region_of: Box<[Option<Box<str>>]>,
    /// The endpoints of each level, most preferred first.
    levels: Box<[Box<[usize]>]>,
    factor: f64,
}

/// Where a request may go: a level, and within it the endpoints of one region, or of the
/// others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice<'r> {
    pub level: usize,
    pub region: Option<(&'r str, bool)>,
}

impl Levels {
    /// `None` when there is nothing to choose: one priority and no regions.
    pub fn new(priorities: &[u32], regions: &[Option<String>], factor: f64) -> Option<Self> {
        let mut distinct: Vec<u32> = priorities.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() <= 1 && regions.iter().all(Option::is_none) {
            return None;
        }
        let level_of: Box<[usize]> = priorities
            .iter()
            .map(|p| distinct.iter().position(|d| d == p).unwrap_or(0))
            .collect();
        let levels = (0..distinct.len())
            .map(|l| {
                (0..priorities.len())
                    .filter(|i| level_of[*i] == l)
                    .collect()
            })
            .collect();
        Some(Levels {
            level_of,
            region_of: regions
                .iter()
                .map(|r| r.as_deref().map(Box::from))
                .collect(),
            levels,
            factor,
        })
    }

    /// The level and region for a new request from `region`, with `usable(i)` telling which
    /// endpoints can take it now; `draw()` gives numbers in `0..1` (two at most).
    pub fn choose<'r>(
        &self,
        region: Option<&'r str>,
        usable: impl Fn(usize) -> bool,
        mut draw: impl FnMut() -> f64,
    ) -> Choice<'r> {
        let health = |eps: &mut dyn Iterator<Item = &usize>| {
            let (mut n, mut up) = (0usize, 0usize);
            for i in eps {
                n += 1;
                up += usize::from(usable(*i));
            }
            if n == 0 {
                0.0
            } else {
                (up as f64 / n as f64 * self.factor).min(1.0)
            }
        };
        // Each level's share of the traffic: its health, capped by what the levels before
        // it left.
        let mut left = 1.0;
        let shares: Vec<f64> = self
            .levels
            .iter()
            .map(|eps| {
                let share = health(&mut eps.iter()).min(left);
                left -= share;
                share
            })
            .collect();
        let total: f64 = shares.iter().sum();
        let level = if total <= 0.0 {
            0
        } else {
            let u = draw() * total;
            let mut acc = 0.0;
            shares
                .iter()
                .position(|s| {
                    acc += s;
                    u < acc
                })
                .unwrap_or(shares.len() - 1)
        };
        let eps = &self.levels[level];
        let Some(r) = region else {
            return Choice {
                level,
                region: None,
            };
        };
        let local = |i: &&usize| self.region_of[**i].as_deref() == Some(r);
        let (has_local, has_other) = (
            eps.iter().any(|i| local(&i)),
            eps.iter().any(|i| !local(&i)),
        );
        if !has_local || !has_other {
            return Choice {
                level,
                region: None,
            };
        }
        let local_share = health(&mut eps.iter().filter(local));
        let others_up = eps.iter().any(|i| !local(&i) && usable(*i));
        let stay = !others_up || draw() < local_share;
        Choice {
            level,
            region: Some((r, stay)),
        }
    }

    /// Whether endpoint `i` is among those `c` allows.
    pub fn allows(&self, c: &Choice<'_>, i: usize) -> bool {
        self.level_of.get(i) == Some(&c.level)
            && c.region.is_none_or(|(r, local)| {
                (self.region_of.get(i).and_then(|x| x.as_deref()) == Some(r)) == local
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The share of `n` draws spread over `0..1` that each endpoint's choice allows it.
    fn shares(
        l: &Levels,
        region: Option<&str>,
        usable: impl Fn(usize) -> bool,
        n: usize,
    ) -> Vec<f64> {
        let mut c = vec![0usize; l.level_of.len()];
        for k in 0..n {
            let u = (k as f64 + 0.5) / n as f64;
            let choice = l.choose(region, &usable, || u);
            for (i, slot) in c.iter_mut().enumerate() {
                *slot += usize::from(l.allows(&choice, i));
            }
        }
        c.iter().map(|x| *x as f64 / n as f64).collect()
    }

    #[test]
    fn nothing_to_choose_without_levels_or_regions() {
        assert!(Levels::new(&[0, 0, 0], &[None, None, None], 1.4).is_none());
        assert!(Levels::new(&[0, 1], &[None, None], 1.4).is_some());
        assert!(Levels::new(&[0, 0], &[Some("eu".into()), None], 1.4).is_some());
    }

    #[test]
    fn the_first_level_takes_everything_until_too_little_of_it_is_usable() {
        // Five endpoints at priority 0, five at priority 1.
        let prios = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
        let l = Levels::new(&prios, &[const { None }; 10], 1.4).unwrap();
        let s = shares(&l, None, |_| true, 1000);
        assert!(s[..5].iter().all(|x| *x == 1.0) && s[5..].iter().all(|x| *x == 0.0));
        // 4 of 5 usable: 0.8 × 1.4 ≥ 1: still all of it.
        let s = shares(&l, None, |i| i != 0, 1000);
        assert_eq!(s[1], 1.0);
        // 2 of 5: 0.4 × 1.4 = 56% stays, 44% spills over.
        let s = shares(&l, None, |i| i >= 3, 1000);
        assert!(
            (s[3] - 0.56).abs() < 0.01 && (s[7] - 0.44).abs() < 0.01,
            "{s:?}"
        );
        // None usable: the next level takes it all.
        let s = shares(&l, None, |i| i >= 5, 1000);
        assert_eq!(s[7], 1.0);
    }

    #[test]
    fn shares_are_scaled_up_when_every_level_is_degraded() {
        let l = Levels::new(&[0, 0, 1, 1], &[const { None }; 4], 1.4).unwrap();
        // One of two usable in each level: 70% then 30% (what is left), no scaling needed.
        let s = shares(&l, None, |i| i == 0 || i == 2, 1000);
        assert!(
            (s[0] - 0.7).abs() < 0.01 && (s[2] - 0.3).abs() < 0.01,
            "{s:?}"
        );
        // Without overprovisioning, one of four usable in each of two levels: 25% + 25% =
        // 50% in all, scaled up to 50/50.
        let l = Levels::new(&[0, 0, 0, 0, 1, 1, 1, 1], &[const { None }; 8], 1.0).unwrap();
        let s = shares(&l, None, |i| i == 0 || i == 4, 1000);
        assert!(
            (s[0] - 0.5).abs() < 0.01 && (s[4] - 0.5).abs() < 0.01,
            "{s:?}"
        );
    }

    #[test]
    fn a_region_keeps_its_traffic_while_enough_of_it_is_usable_then_spills() {
        let regions = [
            Some("eu".to_string()),
            Some("eu".to_string()),
            Some("us".to_string()),
            Some("us".to_string()),
        ];
        let l = Levels::new(&[0, 0, 0, 0], &regions, 1.4).unwrap();
        let s = shares(&l, Some("eu"), |_| true, 1000);
        assert_eq!(s, [1.0, 1.0, 0.0, 0.0]);
        let s = shares(&l, Some("us"), |_| true, 1000);
        assert_eq!(s, [0.0, 0.0, 1.0, 1.0]);
        // Half of eu usable: 70% stays in eu, 30% crosses over.
        let s = shares(&l, Some("eu"), |i| i != 0, 1000);
        assert!(
            (s[1] - 0.7).abs() < 0.01 && (s[2] - 0.3).abs() < 0.01,
            "{s:?}"
        );
        // eu down: all to us, no config change.
        let s = shares(&l, Some("eu"), |i| i >= 2, 1000);
        assert_eq!(s, [0.0, 0.0, 1.0, 1.0]);
        // A region no endpoint has, or none given: the whole level.
        assert_eq!(shares(&l, Some("ap"), |_| true, 10), [1.0; 4]);
        assert_eq!(shares(&l, None, |_| true, 10), [1.0; 4]);
    }
}

//! How the noise grows with the level. Traffic and business counts are noisier at their
//! peaks than in their troughs (counts vary about as their square root, shares of a total
//! as the total), machine metrics often not at all: one spread for the whole day would see
//! every peak as an anomaly or miss every one in a trough. The noise is modelled as
//! `spread · (level / typical)^k`, with `k` in [0, 1] the slope of the log of the errors
//! against the log of the expected level (an exponentially weighted regression over about
//! two days): 0 for noise that does not follow the level, ½ for counts, 1 for noise in
//! proportion. Only for series that have stayed positive; `k` is shrunk towards 0 while
//! the level has varied little (it cannot be told then, and matters little).

/// Exponentially weighted means of the log level, the log error, their squares and their
/// product.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LevelNoise {
    n: u64,
    lv: f64,
    lr: f64,
    lv2: f64,
    lvlr: f64,
    /// Every value seen was above zero.
    negative_seen: bool,
}

/// The factor is held within [1/FACTOR_LIMIT, FACTOR_LIMIT].
const FACTOR_LIMIT: f64 = 8.0;

impl LevelNoise {
    /// Learns one error `r` made when `expected` was expected and `value` came.
    pub(super) fn learn(&mut self, expected: f64, value: f64, r: f64, alpha: f64) {
        if value <= 0.0 || expected <= 0.0 {
            self.negative_seen |= value <= 0.0;
            return;
        }
        if r == 0.0 || !r.is_finite() {
            return;
        }
        let (lv, lr) = (expected.ln(), r.abs().ln());
        self.n += 1;
        let a = alpha.max(1.0 / self.n as f64);
        self.lv += a * (lv - self.lv);
        self.lr += a * (lr - self.lr);
        self.lv2 += a * (lv * lv - self.lv2);
        self.lvlr += a * (lv * lr - self.lvlr);
    }

    /// The slope `k`, shrunk while the level has varied little.
    pub(super) fn slope(&self) -> f64 {
        if self.negative_seen || self.n < 24 {
            return 0.0;
        }
        let var = self.lv2 - self.lv * self.lv;
        let cov = self.lvlr - self.lv * self.lr;
        if var.is_nan() || var <= 1e-9 {
            return 0.0;
        }
        // A level varying by ±10% (var 0.01) gets half its slope.
        let k = (cov / var).clamp(0.0, 1.0);
        k * var / (var + 0.01)
    }

    /// What the spread is multiplied by where `expected` is expected.
    pub(super) fn factor(&self, expected: f64) -> f64 {
        let k = self.slope();
        if k == 0.0 || expected <= 0.0 {
            return 1.0;
        }
        let f = (k * (expected.ln() - self.lv)).exp();
        if f.is_finite() {
            f.clamp(1.0 / FACTOR_LIMIT, FACTOR_LIMIT)
        } else {
            1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LevelNoise;

    #[test]
    fn the_slope_follows_how_the_noise_grows() {
        for (k, want) in [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)] {
            let mut m = LevelNoise::default();
            for i in 0..5_000 {
                let level = 100.0 + 90.0 * (i as f64 / 50.0).sin();
                // Errors of 0.1 to 0.2 times level^k, alternating signs.
                let r = 0.1
                    * level.powf(k)
                    * (1.0 + (i % 3) as f64 / 2.0)
                    * if i % 2 == 0 { 1.0 } else { -1.0 };
                m.learn(level, level + r, r, 0.01);
            }
            assert!((m.slope() - want).abs() < 0.1, "k {k}: {}", m.slope());
            if want > 0.0 {
                assert!(m.factor(190.0) > m.factor(10.0));
            }
        }
        // A series that went to zero or under: no slope.
        let mut m = LevelNoise::default();
        m.learn(5.0, -1.0, 6.0, 0.1);
        assert_eq!(m.slope(), 0.0);
        assert_eq!(m.factor(100.0), 1.0);
    }
}

//! The memory governor's levels: how far resident memory is into its limit decides the
//! step in force — none, the memory cache shrunk, cache fills stopped, low-priority
//! requests shed — each level including the ones under it. A level is entered as soon as
//! memory reaches it (several at once if need be) and left only once memory is `recover`
//! points under it, one level at a time, so that memory hovering at a threshold does not
//! flap the steps on and off. What each step does is the gateway's (`memory_governor.rs`);
//! this is the arithmetic, tested on its own.

use std::sync::atomic::{AtomicU8, Ordering};

/// A pressure level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Pressure {
    Normal = 0,
    /// The memory cache is cut to half its size.
    Shrink = 1,
    /// And the cache stores nothing new.
    NoFill = 2,
    /// And low-priority requests are refused.
    Shed = 3,
}

impl Pressure {
    pub const ALL: [Pressure; 4] = [
        Pressure::Normal,
        Pressure::Shrink,
        Pressure::NoFill,
        Pressure::Shed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Pressure::Normal => "normal",
            Pressure::Shrink => "shrink",
            Pressure::NoFill => "no_fill",
            Pressure::Shed => "shed",
        }
    }

    fn from_u8(n: u8) -> Pressure {
        Pressure::ALL
            .get(usize::from(n))
            .copied()
            .unwrap_or(Pressure::Shed)
    }

    /// The level after `self` when memory is at `percent` of its limit, with `levels` the
    /// percents of shrink, no-fill and shed, and `recover` the points under a level before
    /// it is left.
    pub fn next(self, percent: f64, levels: [f64; 3], recover: f64) -> Pressure {
        let reached = levels.iter().take_while(|l| percent >= **l).count();
        let up = Pressure::from_u8(u8::try_from(reached).unwrap_or(3));
        if up > self {
            return up;
        }
        let mut now = self;
        while now > Pressure::Normal && percent < levels[now as usize - 1] - recover {
            now = Pressure::from_u8(now as u8 - 1);
        }
        now
    }
}

/// The level in force, read by the data plane (one atomic load a request) and written by
/// the governor.
#[derive(Debug, Default)]
pub struct PressureLevel(AtomicU8);

impl PressureLevel {
    pub fn get(&self) -> Pressure {
        Pressure::from_u8(self.0.load(Ordering::Relaxed))
    }

    pub fn set(&self, p: Pressure) {
        self.0.store(p as u8, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Pressure::{self, *};

    const LEVELS: [f64; 3] = [70.0, 85.0, 95.0];

    fn walk(from: Pressure, percents: &[f64]) -> Vec<Pressure> {
        let mut p = from;
        percents
            .iter()
            .map(|x| {
                p = p.next(*x, LEVELS, 5.0);
                p
            })
            .collect()
    }

    #[test]
    fn levels_are_entered_at_once_and_left_with_hysteresis() {
        assert_eq!(
            walk(Normal, &[50.0, 70.0, 69.0, 66.0, 64.9, 86.0, 97.0]),
            [Normal, Shrink, Shrink, Shrink, Normal, NoFill, Shed]
        );
        // From shed, down one level at a time as memory falls under each less 5 points.
        assert_eq!(
            walk(Shed, &[94.0, 90.1, 89.9, 80.1, 79.9, 65.1, 64.9]),
            [Shed, Shed, NoFill, NoFill, Shrink, Shrink, Normal]
        );
        // A fall far enough leaves every level at once.
        assert_eq!(walk(Shed, &[10.0]), [Normal]);
        // A jump straight to the top.
        assert_eq!(walk(Normal, &[99.0]), [Shed]);
        assert_eq!(walk(NoFill, &[150.0]), [Shed]);
    }

    #[test]
    fn the_shared_level_reads_back() {
        let l = super::PressureLevel::default();
        assert_eq!(l.get(), Normal);
        l.set(NoFill);
        assert_eq!(l.get(), NoFill);
    }
}

//! A point of the history and the resolutions it is kept at.

/// A resolution of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    TenSeconds,
    Minute,
    Hour,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [Resolution::TenSeconds, Resolution::Minute, Resolution::Hour];

    pub fn secs(self) -> u64 {
        match self {
            Resolution::TenSeconds => 10,
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
        }
    }

    /// Its place in [`Resolution::ALL`] (and in a retention per resolution).
    pub fn index(self) -> usize {
        match self {
            Resolution::TenSeconds => 0,
            Resolution::Minute => 1,
            Resolution::Hour => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::TenSeconds => "10s",
            Resolution::Minute => "1m",
            Resolution::Hour => "1h",
        }
    }

    pub fn parse(s: &str) -> Option<Resolution> {
        Resolution::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A value over one bucket: its start (Unix seconds), the value, and the lowest and
/// highest 10-second value within it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Point {
    pub t: u64,
    pub value: f64,
    pub min: f64,
    pub max: f64,
}

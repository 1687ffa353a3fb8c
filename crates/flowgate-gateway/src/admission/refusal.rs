//! Why a rate limit refused a request: the 429's message and headers.

use std::time::Duration;

use flowgate_config::LimitUnit;

use super::rate_state::RateState;

/// Why a limit refused a request: the 429's message and headers.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub limit: String,
    /// The scope's value the limit counted (empty for a global limit).
    pub value: String,
    pub unit: LimitUnit,
    pub amount: u64,
    pub per: Duration,
    /// What the request would have taken, and the most the limit allows at once.
    pub needed: u64,
    pub burst: u64,
    /// `None` when the request can never pass (it needs more than the burst).
    pub retry_after: Option<Duration>,
    pub state: RateState,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = self.unit.as_str();
        write!(f, "rate limit {} reached", self.limit)?;
        if !self.value.is_empty() {
            write!(f, " for {}", self.value)?;
        }
        write!(
            f,
            ": {} {unit} per {}; ",
            self.amount,
            flowgate_config::format_duration(self.per)
        )?;
        match self.retry_after {
            Some(d) => write!(f, "retry in {}", flowgate_config::format_duration(d)),
            None => write!(
                f,
                "this request needs about {} {unit}, more than the {} the limit allows at \
                 once; shorten the prompt or lower max_tokens",
                self.needed, self.burst
            ),
        }
    }
}

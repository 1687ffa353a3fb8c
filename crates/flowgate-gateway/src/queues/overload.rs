//! Why a concurrency limit refused a request (its 429 or 503), and what a limit is for.

use std::time::Duration;

use flowgate_admission::concurrency::{Priority, Refused};

/// What a concurrency limit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Key,
    Route,
    Pool,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Route => "route",
            Scope::Pool => "pool",
        }
    }
}

/// Why a request got no permit: the 429 or 503.
#[derive(Debug, Clone)]
pub struct Overload {
    pub scope: Scope,
    pub name: String,
    pub refused: Refused,
    pub priority: Priority,
    pub limit: usize,
    pub queue_timeout: Duration,
}

impl std::fmt::Display for Overload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (scope, name, limit) = (self.scope.as_str(), &self.name, self.limit);
        match self.refused {
            Refused::QueueFull => write!(
                f,
                "{scope} {name} has {limit} requests in flight and its queue is full"
            ),
            Refused::Timeout => write!(
                f,
                "no slot of {scope} {name} ({limit} in flight) came free within {}",
                flowgate_config::format_duration(self.queue_timeout)
            ),
            Refused::Shed => write!(
                f,
                "{scope} {name} is full: this {} request gave its place in the queue to a \
                 more urgent one",
                self.priority.as_str()
            ),
        }?;
        f.write_str("; retry shortly")
    }
}

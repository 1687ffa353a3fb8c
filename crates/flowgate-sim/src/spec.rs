//! What a simulated endpoint does.

use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution, LogNormal, Normal};

/// How long an endpoint takes before its response head (or first token, when streaming).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyDist {
    Fixed(Duration),
    /// Normal with this mean and standard deviation, truncated at zero.
    Normal {
        mean: Duration,
        std_dev: Duration,
    },
    /// Log-normal with this median and shape σ (σ ≈ 0.5 gives a realistic LLM tail).
    LogNormal {
        median: Duration,
        sigma: f64,
    },
}

impl LatencyDist {
    /// Draws one latency.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        let secs = match *self {
            LatencyDist::Fixed(d) => return d,
            LatencyDist::Normal { mean, std_dev } => {
                Normal::new(mean.as_secs_f64(), std_dev.as_secs_f64())
                    .map_or(mean.as_secs_f64(), |n| n.sample(rng))
            }
            LatencyDist::LogNormal { median, sigma } => {
                let mu = median.as_secs_f64().max(1e-9).ln();
                LogNormal::new(mu, sigma).map_or(median.as_secs_f64(), |n| n.sample(rng))
            }
        };
        Duration::from_secs_f64(secs.clamp(0.0, 3600.0))
    }
}

/// Behaviour of one simulated endpoint.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    /// Time to response head (JSON) or to the first token (SSE).
    pub latency: LatencyDist,
    /// Delay between streamed tokens.
    pub token_delay: Duration,
    /// Tokens in a completion (capped by the request's `max_tokens`).
    pub completion_tokens: u32,
    /// Share of requests answered with 500.
    pub error_rate: f64,
    /// Share of requests answered with 429 and `Retry-After: retry_after_secs`.
    pub rate_limit_rate: f64,
    pub retry_after_secs: u32,
    /// Share of requests whose connection is dropped without an answer.
    pub reset_rate: f64,
    /// Share of requests that never answer (until the client gives up).
    pub stall_rate: f64,
    /// Seed of the per-request random draws.
    pub seed: u64,
    /// The AWS key Bedrock requests must be signed with ([`SIM_AWS_KEY`] unless set).
    pub aws: flowgate_providers::sigv4::Credentials,
    /// The region Bedrock requests must be signed for, if any.
    pub aws_region: Option<String>,
    /// The key Azure requests must carry (any, if unset).
    pub azure_key: Option<String>,
    /// The key Gemini requests must carry (any, if unset).
    pub gemini_key: Option<String>,
    /// The one API the endpoint speaks (`flowgate sim --provider`), or every one.
    pub dialect: Option<Dialect>,
}

/// A provider's API, as the simulator speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Azure,
    Anthropic,
    Bedrock,
    Gemini,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Azure => "azure",
            Dialect::Anthropic => "anthropic",
            Dialect::Bedrock => "bedrock",
            Dialect::Gemini => "gemini",
        }
    }
}

/// The AWS key the simulator knows unless told another: id, secret.
pub const SIM_AWS_KEY: (&str, &str) = ("AKIAFLOWGATESIM00000", "flowgate-sim-secret-key");

impl Default for EndpointSpec {
    fn default() -> Self {
        EndpointSpec {
            latency: LatencyDist::Fixed(Duration::ZERO),
            token_delay: Duration::ZERO,
            completion_tokens: 16,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 1,
            reset_rate: 0.0,
            stall_rate: 0.0,
            seed: 1,
            aws: flowgate_providers::sigv4::Credentials {
                access_key: SIM_AWS_KEY.0.into(),
                secret_key: SIM_AWS_KEY.1.into(),
                session_token: None,
            },
            aws_region: None,
            azure_key: None,
            gemini_key: None,
            dialect: None,
        }
    }
}

/// The fate drawn for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Ok,
    ServerError,
    RateLimited,
    Reset,
    Stall,
}

impl EndpointSpec {
    /// A fixed-latency endpoint.
    pub fn fixed(latency: Duration) -> Self {
        EndpointSpec {
            latency: LatencyDist::Fixed(latency),
            ..Self::default()
        }
    }

    pub(crate) fn fate(&self, rng: &mut impl Rng) -> Fate {
        let u: f64 = rng.random();
        let mut edge = self.error_rate;
        if u < edge {
            return Fate::ServerError;
        }
        edge += self.rate_limit_rate;
        if u < edge {
            return Fate::RateLimited;
        }
        edge += self.reset_rate;
        if u < edge {
            return Fate::Reset;
        }
        edge += self.stall_rate;
        if u < edge {
            return Fate::Stall;
        }
        Fate::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn fates_follow_configured_rates() {
        let spec = EndpointSpec {
            error_rate: 0.2,
            rate_limit_rate: 0.1,
            ..EndpointSpec::default()
        };
        let mut rng = SmallRng::seed_from_u64(7);
        let n = 20_000;
        let errors = (0..n)
            .filter(|_| spec.fate(&mut rng) == Fate::ServerError)
            .count();
        let share = errors as f64 / n as f64;
        assert!((share - 0.2).abs() < 0.02, "{share}");
    }

    #[test]
    fn lognormal_median_is_the_median() {
        let d = LatencyDist::LogNormal {
            median: Duration::from_millis(100),
            sigma: 0.5,
        };
        let mut rng = SmallRng::seed_from_u64(1);
        let mut v: Vec<Duration> = (0..10_001).map(|_| d.sample(&mut rng)).collect();
        v.sort();
        let median = v[5000].as_secs_f64();
        assert!((median - 0.1).abs() < 0.01, "{median}");
    }
}

//! `flowgate sim`: one simulated upstream, for benchmarks and manual tests.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use flowgate_sim::{Dialect, EndpointSpec, LatencyDist, SimServer};

/// The one API a simulator speaks (`--provider`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProviderArg {
    Openai,
    Azure,
    Anthropic,
    Bedrock,
    Gemini,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Dist {
    Fixed,
    Normal,
    Lognormal,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:18081")]
    listen: SocketAddr,
    /// Latency to response head (or first token when streaming), in ms: the fixed value, the
    /// mean (normal) or the median (lognormal).
    #[arg(long, default_value_t = 0.0)]
    latency_ms: f64,
    #[arg(long, value_enum, default_value = "fixed")]
    latency_dist: Dist,
    /// Standard deviation (normal, ms) or shape σ (lognormal).
    #[arg(long, default_value_t = 0.5)]
    latency_spread: f64,
    /// Delay between streamed tokens, in ms.
    #[arg(long, default_value_t = 0.0)]
    token_ms: f64,
    /// Tokens per completion (capped by the request's max_tokens).
    #[arg(long, default_value_t = 16)]
    tokens: u32,
    /// Share of requests answered with 500.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Share of requests answered with 429 + Retry-After.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u32,
    /// Share of requests whose connection is dropped.
    #[arg(long, default_value_t = 0.0)]
    reset_rate: f64,
    /// Share of requests that never answer.
    #[arg(long, default_value_t = 0.0)]
    stall_rate: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The region Bedrock requests must be signed for (any, if unset).
    #[arg(long)]
    aws_region: Option<String>,
    /// The key Azure requests must carry in `api-key` (any, if unset).
    #[arg(long)]
    azure_key: Option<String>,
    /// The key Gemini requests must carry in `x-goog-api-key` (any, if unset).
    #[arg(long)]
    gemini_key: Option<String>,
    /// Speak only this provider's API (every other path is a 404); all of them if unset.
    #[arg(long, value_enum)]
    provider: Option<ProviderArg>,
}

impl SimArgs {
    fn spec(&self) -> anyhow::Result<EndpointSpec> {
        let ms = |v: f64| Duration::from_secs_f64(v.max(0.0) / 1000.0);
        for (name, v) in [
            ("--error-rate", self.error_rate),
            ("--rate-limit-rate", self.rate_limit_rate),
            ("--reset-rate", self.reset_rate),
            ("--stall-rate", self.stall_rate),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&v),
                "{name} must be between 0 and 1, got {v}"
            );
        }
        let latency = match self.latency_dist {
            Dist::Fixed => LatencyDist::Fixed(ms(self.latency_ms)),
            Dist::Normal => LatencyDist::Normal {
                mean: ms(self.latency_ms),
                std_dev: ms(self.latency_spread),
            },
            Dist::Lognormal => LatencyDist::LogNormal {
                median: ms(self.latency_ms),
                sigma: self.latency_spread,
            },
        };
        Ok(EndpointSpec {
            latency,
            token_delay: ms(self.token_ms),
            completion_tokens: self.tokens,
            error_rate: self.error_rate,
            rate_limit_rate: self.rate_limit_rate,
            retry_after_secs: self.retry_after_secs,
            reset_rate: self.reset_rate,
            stall_rate: self.stall_rate,
            seed: self.seed,
            // Bedrock requests are checked against the key of the environment, as the
            // gateway finds it, else the simulator's own.
            aws: flowgate_providers::aws_credentials::from_env(&|k| std::env::var(k).ok())
                .unwrap_or_else(|| EndpointSpec::default().aws),
            aws_region: self.aws_region.clone(),
            azure_key: self.azure_key.clone(),
            gemini_key: self.gemini_key.clone(),
            dialect: self.provider.map(|p| match p {
                ProviderArg::Openai => Dialect::OpenAi,
                ProviderArg::Azure => Dialect::Azure,
                ProviderArg::Anthropic => Dialect::Anthropic,
                ProviderArg::Bedrock => Dialect::Bedrock,
                ProviderArg::Gemini => Dialect::Gemini,
            }),
        })
    }
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.listen.ip().is_loopback(),
        "the simulator only listens on loopback addresses"
    );
    let server = SimServer::start(args.listen, args.spec()?).await?;
    tracing::info!(addr = %server.addr(), "simulated upstream listening");
    tokio::signal::ctrl_c().await?;
    let s = server.stats();
    tracing::info!(
        requests = s.requests,
        completed = s.completed,
        cancelled = s.cancelled,
        "stopped"
    );
    Ok(())
}

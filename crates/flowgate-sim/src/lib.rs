//! A simulated upstream fleet (OpenAI-compatible, Anthropic and Bedrock) and workload generators, for flowgate's
//! tests, demo and benchmarks.
//!
//! An endpoint ([`SimServer`]) answers `POST /v1/chat/completions` (JSON or SSE when
//! `"stream": true`), `POST /v1/completions`, `POST /v1/embeddings`, `GET /v1/models` and
//! `GET /health`, with a latency drawn from a configured distribution, a time to first token
//! and a per-token delay for streams, and injected faults: 500s, 429s with `Retry-After`,
//! connection resets and stalls. Every response carries a realistic `usage` block. Randomness
//! is seeded per request (seed + request number), so a run repeats.
//!
//! It speaks Anthropic's Messages API too, at `POST /v1/messages` (JSON or its SSE event
//! sequence, its error bodies, 529 for overload): one simulator serves every dialect at the
//! dialect's own paths. And Bedrock's runtime API for Anthropic's models, at
//! `POST /model/{id}/invoke` and `/invoke-with-response-stream`: SigV4 checked on every
//! request (the key [`SIM_AWS_KEY`] unless the spec says another), event-stream frames with
//! their CRCs, AWS's error types. And Azure OpenAI's deployment paths
//! (`/openai/deployments/{name}/chat/completions?api-version=...`, the key in `api-key`).
//! And Gemini's `/v1beta/models/{model}:generateContent` and `:streamGenerateContent`.
//!
//! Two helper paths serve tests: `/echo/...` answers with what it received (method, path,
//! headers, body size) and `GET /sim/stats` with the endpoint's counters, including requests
//! the client abandoned before the answer was complete.

mod anthropic;
mod azure;
mod bedrock;
mod body;
mod content;
mod gemini;
mod reply;
mod server;
mod spec;
mod stats;
pub mod workload;

pub use server::SimServer;
pub use spec::{Dialect, EndpointSpec, LatencyDist, SIM_AWS_KEY};
pub use stats::{SimStats, StatsSnapshot};

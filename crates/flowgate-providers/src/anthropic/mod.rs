//! Anthropic's Messages API (`POST /v1/messages`, `x-api-key`, `anthropic-version`).
//!
//! - [`request`]: an OpenAI chat request as a Messages request.
//! - [`response`]: a message as a `chat.completion`; error bodies as OpenAI's, with the
//!   status a client and the balancer act on.
//! - [`stream`]: the SSE event stream as `chat.completion.chunk` events.
//! - [`clients`]: the same API spoken by flowgate's own clients, to and from OpenAI's.

pub mod clients;
pub mod request;
pub mod response;
pub mod stream;
mod wire;

#[cfg(test)]
mod tests;

pub use request::{JSON_TOOL, Target, Translated, translate};
pub use response::{BadAnswer, completion, error};
pub use stream::{StreamError, Translator};

/// The API version flowgate speaks (`anthropic-version`).
pub const VERSION: &str = "2023-06-01";

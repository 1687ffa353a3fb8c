//! Anthropic's Messages API as a second dialect for flowgate's own clients (Claude
//! clients on `/v1/messages`): their requests become the OpenAI chat requests the gateway
//! works on ([`to_openai`]), so that limits, the cache (one entry whichever dialect asked),
//! model routing and every provider serve them; the OpenAI answers become Messages API
//! answers again ([`message`], [`Stream`], [`error`]).

mod answer;
mod request;
#[cfg(test)]
mod tests;

pub use answer::{Stream, error, message};
pub use request::{Ask, to_openai};

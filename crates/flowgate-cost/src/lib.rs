//! flowgate's token accounting: what a request will cost before it is sent, and what it
//! cost once its answer is read.
//!
//! [`tokens::estimate_with`] reads an OpenAI-shaped request body and counts its prompt's
//! tokens (exactly for OpenAI's models, with their [`Tokenizer`]; by a rule of thumb for the
//! others) and the completion it may ask for (`max_tokens` × `n`): the estimate is used to
//! reserve token-rate limits and to refuse prompts over a size, and is corrected by the
//! real usage later. [`usage::Meter`] reads that real usage from an answer
//! as it streams past (a JSON body or server-sent events), and estimates the completion
//! from its text when the upstream reports none. [`sse::Events`] splits server-sent events
//! for it and for the cache, which stores streamed answers.
//!
//! [`price::cost`] prices an answer's usage at its model's prices (the model catalog's,
//! `flowgate_config::ModelCatalog`), in decimal dollars.

pub mod advice;
pub mod budget;
pub mod choice;
pub mod ledger;
pub mod price;
pub mod shaping;
pub mod sse;
pub mod tokenizer;
pub mod tokens;
pub mod usage;

pub use flowgate_config::ModelPrice;
pub use price::{cost, nanos};
pub use tokenizer::{Tokenizer, text_tokens};
pub use tokens::{Estimate, estimate, estimate_with};
pub use usage::{Meter, Metered, Usage, usage_of};

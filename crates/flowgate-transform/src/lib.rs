//! Response transforms: what a route does to an answer before its client gets it (issue
//! 27). A JSON body is minified, its `null` members dropped and configured fields
//! redacted ([`json`]); a body over a threshold is compressed with the coding the
//! client's `Accept-Encoding` prefers among those offered ([`encoding`]). Pure functions
//! over bytes: the gateway decides which answers they apply to (never a streamed one,
//! never the cache's stored copy).

pub mod encoding;
pub mod json;

pub use encoding::{Encoding, negotiate};
pub use json::{JsonRewrite, NotJson, Redaction};

//! HTTP/1.1 to upstreams: [`Wire`] writes a request and reads the answer's head on one
//! connection (pooled by the `pool` module, whose `ResponseBody` reads the answer's body off
//! it).

mod wire;

pub use wire::{ExchangeError, ReqFraming, RequestHead, ResponseHead, SPARE_FIELDS, Wire};

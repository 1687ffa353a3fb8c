//! HTTP to upstreams: [`Wire`] writes a request and reads the answer's head on one
//! HTTP/1.1 connection; [`h2`] multiplexes requests on an HTTP/2 one. Both are pooled by
//! the `pool` module, whose `ResponseBody` reads the answer's body.

pub mod h2;
mod wire;

/// The response-head parser, for the fuzzing entry points: the body's decoder and whether the
/// connection can be kept.
pub(crate) fn parse_for_fuzzing(
    buf: &mut bytes::BytesMut,
    head_request: bool,
) -> Result<Option<(crate::chunked::Decoder, bool)>, ExchangeError> {
    wire::parse_for_fuzzing(buf, head_request)
}

pub use wire::{
    ExchangeError, ReqFraming, RequestHead, ResponseFraming, ResponseHead, SPARE_FIELDS, Wire,
};

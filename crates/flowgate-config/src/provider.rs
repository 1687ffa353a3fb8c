//! Which API a pool's servers speak (`provider`): OpenAI's (and every OpenAI-compatible
//! server's), or Anthropic's Messages API, to which the gateway translates.

use crate::error::{Found, KeyPath};
use crate::model::EndpointConfig;
use crate::raw::RawEndpoint;

/// A pool's `provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// OpenAI's API, as OpenAI and OpenAI-compatible servers (vLLM, Ollama, TGI) speak it:
    /// requests pass as they are.
    #[default]
    OpenAi,
    /// Anthropic's Messages API: requests and answers are translated.
    Anthropic,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }
}

/// Reads `provider`; for Anthropic, an endpoint's key goes in `x-api-key` unless it names
/// its own header.
pub(crate) fn provider(
    raw: Option<&str>,
    endpoints: &mut [RawEndpoint],
    key: &KeyPath,
    found: &mut Found,
) -> Provider {
    let key = key.clone().key("provider");
    let p = match raw {
        None | Some("openai" | "openai_compatible") => Provider::OpenAi,
        Some("anthropic") => Provider::Anthropic,
        Some(p @ ("azure" | "bedrock" | "gemini")) => {
            found.push((
                key,
                format!("{p:?} is not built yet (issue 22): \"openai\", \"openai_compatible\" and \"anthropic\" are"),
            ));
            return Provider::OpenAi;
        }
        Some(other) => {
            found.push((
                key,
                format!("{other:?}: expected \"openai\", \"openai_compatible\" or \"anthropic\""),
            ));
            return Provider::OpenAi;
        }
    };
    if p == Provider::Anthropic {
        for e in endpoints.iter_mut().filter(|e| e.api_key_header.is_none()) {
            e.api_key_header = Some("x-api-key".into());
        }
    }
    p
}

/// A provider whose API needs a key: every endpoint must have one.
pub(crate) fn check_keys(
    p: Provider,
    endpoints: &[EndpointConfig],
    key: &KeyPath,
    found: &mut Found,
) {
    if p != Provider::Anthropic {
        return;
    }
    for (i, e) in endpoints.iter().enumerate() {
        if e.api_key.is_none() {
            found.push((
                key.clone().key("endpoints").index(i).key("api_key_env"),
                format!(
                    "endpoint {} of an anthropic pool needs its API key: api_key_env names the variable that holds it",
                    e.name
                ),
            ));
        }
    }
}

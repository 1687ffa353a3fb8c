//! Which API a pool's servers speak (`provider`): OpenAI's (and every OpenAI-compatible
//! server's), or Anthropic's Messages API, to which the gateway translates.

use crate::error::{Found, KeyPath};

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
    /// The field an endpoint's key goes in when it names none (`api_key_header`).
    pub fn key_header(self) -> &'static str {
        match self {
            Provider::OpenAi => "authorization",
            Provider::Anthropic => "x-api-key",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }
}

/// Reads `provider`.
pub(crate) fn provider(raw: Option<&str>, key: &KeyPath, found: &mut Found) -> Provider {
    let key = key.clone().key("provider");
    match raw {
        None | Some("openai" | "openai_compatible") => Provider::OpenAi,
        Some("anthropic") => Provider::Anthropic,
        Some(p @ ("azure" | "bedrock" | "gemini")) => {
            found.push((
                key,
                format!("{p:?} is not built yet (issue 22): \"openai\", \"openai_compatible\" and \"anthropic\" are"),
            ));
            Provider::OpenAi
        }
        Some(other) => {
            found.push((
                key,
                format!("{other:?}: expected \"openai\", \"openai_compatible\" or \"anthropic\""),
            ));
            Provider::OpenAi
        }
    }
}

/// A provider whose API needs a key: every endpoint must have one (`endpoints`: each one's
/// name and whether it has a key).
pub(crate) fn check_keys(
    p: Provider,
    endpoints: &[(&str, bool)],
    key: &KeyPath,
    found: &mut Found,
) {
    if p != Provider::Anthropic {
        return;
    }
    for (i, (name, has_key)) in endpoints.iter().enumerate() {
        if !has_key {
            found.push((
                key.clone().key("endpoints").index(i).key("api_key_env"),
                format!(
                    "endpoint {} of an anthropic pool needs its API key: api_key_env names the variable that holds it",
                    name
                ),
            ));
        }
    }
}

//! Which API a pool's servers speak (`provider`): OpenAI's (and every OpenAI-compatible
//! server's), Anthropic's Messages API, or Anthropic's models on AWS Bedrock, to which the
//! gateway translates; and what each needs of the pool's endpoints (a key, a region).

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
    /// Anthropic's models on AWS Bedrock's runtime API: translated as for Anthropic, and
    /// signed with AWS credentials (SigV4) for each endpoint's region.
    Bedrock,
    /// Azure OpenAI: OpenAI's bodies, sent to a deployment's path with an `api-version`
    /// and the `api-key` field.
    Azure,
    /// Google's Gemini API (`generateContent`): requests and answers are translated.
    Gemini,
}

/// The `api-version` Azure OpenAI requests carry unless a pool says another (its latest
/// generally available data-plane version).
pub const AZURE_API_VERSION: &str = "2024-10-21";

impl Provider {
    /// The field an endpoint's key goes in when it names none (`api_key_header`).
    pub fn key_header(self) -> &'static str {
        match self {
            Provider::OpenAi | Provider::Bedrock => "authorization",
            Provider::Anthropic => "x-api-key",
            Provider::Azure => "api-key",
            Provider::Gemini => "x-goog-api-key",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Bedrock => "bedrock",
            Provider::Azure => "azure",
            Provider::Gemini => "gemini",
        }
    }
}

/// Where a Bedrock pool's AWS credentials are looked up: the environment's AWS variables
/// as the config was loaded with them, and the pool's `aws_profile`. `Debug` names the
/// variables set, never their values.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AwsEnv {
    /// `aws_profile`: that profile of the shared files, whatever the environment's keys.
    pub profile: Option<String>,
    vars: Vec<(String, String)>,
}

/// The variables the AWS tools read credentials from.
const AWS_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "HOME",
];

impl AwsEnv {
    fn new(profile: Option<String>, env: &[(String, String)]) -> Self {
        AwsEnv {
            profile,
            vars: env
                .iter()
                .filter(|(k, _)| AWS_VARS.contains(&k.as_str()))
                .cloned()
                .collect(),
        }
    }

    /// Variable `name` as the credential lookup should see it: with `aws_profile` set,
    /// that profile, and no keys from the environment.
    pub fn var(&self, name: &str) -> Option<String> {
        if let Some(p) = &self.profile {
            match name {
                "AWS_PROFILE" => return Some(p.clone()),
                "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN" => {
                    return None;
                }
                _ => {}
            }
        }
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl std::fmt::Debug for AwsEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.vars.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("AwsEnv")
            .field("profile", &self.profile)
            .field("vars", &names)
            .finish()
    }
}

/// Reads `provider`.
pub(crate) fn provider(raw: Option<&str>, key: &KeyPath, found: &mut Found) -> Provider {
    let key = key.clone().key("provider");
    match raw {
        None | Some("openai" | "openai_compatible") => Provider::OpenAi,
        Some("anthropic") => Provider::Anthropic,
        Some("bedrock") => Provider::Bedrock,
        Some("azure") => Provider::Azure,
        Some("gemini") => Provider::Gemini,
        Some(other) => {
            found.push((
                key,
                format!("{other:?}: expected \"openai\", \"openai_compatible\", \"azure\", \"anthropic\", \"bedrock\" or \"gemini\""),
            ));
            Provider::OpenAi
        }
    }
}

/// What [`check_endpoints`] reads of an endpoint, and the region it may fill in.
pub(crate) struct EndpointFacts<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub has_key: bool,
    pub region: &'a mut Option<String>,
}

/// What `p` needs of each endpoint: an Anthropic key; for Bedrock, no key (requests are
/// signed) and a region, taken from a `bedrock-runtime.REGION.amazonaws.com` host when the
/// endpoint names none. The AWS lookup of a Bedrock pool (`aws_profile`).
pub(crate) fn check_endpoints(
    p: Provider,
    aws_profile: Option<&str>,
    endpoints: &mut [EndpointFacts<'_>],
    env: &[(String, String)],
    key: &KeyPath,
    found: &mut Found,
) -> Option<AwsEnv> {
    if aws_profile.is_some() && p != Provider::Bedrock {
        found.push((
            key.clone().key("aws_profile"),
            format!(
                "aws_profile is for bedrock pools; this pool's provider is {}",
                p.as_str()
            ),
        ));
    }
    for (i, e) in endpoints.iter_mut().enumerate() {
        let ek = key.clone().key("endpoints").index(i);
        match p {
            Provider::OpenAi => {}
            Provider::Anthropic | Provider::Azure | Provider::Gemini if !e.has_key => found.push((
                ek.key("api_key_env"),
                format!(
                    "endpoint {} of an {} pool needs its API key: api_key_env names the variable that holds it",
                    e.name,
                    p.as_str()
                ),
            )),
            Provider::Anthropic | Provider::Azure | Provider::Gemini => {}
            Provider::Bedrock => {
                if e.has_key {
                    found.push((
                        ek.clone().key("api_key_env"),
                        "bedrock requests are signed with AWS credentials (the AWS_* variables or the shared files, aws_profile): remove api_key_env".into(),
                    ));
                }
                if e.region.is_none() {
                    *e.region = region_of_host(e.host).map(str::to_string);
                }
                if e.region.is_none() {
                    found.push((
                        ek.key("region"),
                        format!(
                            "endpoint {} of a bedrock pool needs its AWS region (region = \"us-east-1\"): requests are signed for it",
                            e.name
                        ),
                    ));
                }
            }
        }
    }
    (p == Provider::Bedrock).then(|| AwsEnv::new(aws_profile.map(str::to_string), env))
}

/// `api_version`: Azure's, checked for its shape (`2024-10-21`, `2025-04-01-preview`).
pub(crate) fn api_version(
    p: Provider,
    raw: Option<&str>,
    key: &KeyPath,
    found: &mut Found,
) -> Option<String> {
    let key = key.clone().key("api_version");
    match (p, raw) {
        (Provider::Azure, None) => Some(AZURE_API_VERSION.into()),
        (Provider::Azure, Some(v)) => {
            let b = v.as_bytes();
            let dated = b.len() >= 10
                && b[..10].iter().enumerate().all(|(i, c)| {
                    if i == 4 || i == 7 {
                        *c == b'-'
                    } else {
                        c.is_ascii_digit()
                    }
                });
            let tail = v.get(10..).unwrap_or_default();
            if dated && (tail.is_empty() || tail == "-preview") {
                Some(v.to_string())
            } else {
                found.push((
                    key,
                    format!("{v:?}: expected Azure's YYYY-MM-DD or YYYY-MM-DD-preview"),
                ));
                None
            }
        }
        (_, Some(_)) => {
            found.push((
                key,
                format!(
                    "api_version is for azure pools; this pool's provider is {}",
                    p.as_str()
                ),
            ));
            None
        }
        (_, None) => None,
    }
}

/// The region in a Bedrock runtime host name (`bedrock-runtime.REGION.amazonaws.com`, or
/// its FIPS form).
fn region_of_host(host: &str) -> Option<&str> {
    let rest = host
        .strip_prefix("bedrock-runtime.")
        .or_else(|| host.strip_prefix("bedrock-runtime-fips."))?;
    let (region, tail) = rest.split_once('.')?;
    (tail.starts_with("amazonaws.com") && !region.is_empty()).then_some(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_read_from_bedrock_host_names() {
        assert_eq!(
            region_of_host("bedrock-runtime.eu-west-3.amazonaws.com"),
            Some("eu-west-3")
        );
        assert_eq!(
            region_of_host("bedrock-runtime-fips.us-east-1.amazonaws.com"),
            Some("us-east-1")
        );
        assert_eq!(region_of_host("127.0.0.1"), None);
    }

    #[test]
    fn a_profile_hides_the_environments_keys_and_debug_hides_values() {
        let env = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), "AKID".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "s3cr3t".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let plain = AwsEnv::new(None, &env);
        assert_eq!(plain.var("AWS_ACCESS_KEY_ID").as_deref(), Some("AKID"));
        assert_eq!(plain.var("PATH"), None);
        let profiled = AwsEnv::new(Some("prod".into()), &env);
        assert_eq!(profiled.var("AWS_ACCESS_KEY_ID"), None);
        assert_eq!(profiled.var("AWS_PROFILE").as_deref(), Some("prod"));
        let shown = format!("{plain:?}");
        assert!(!shown.contains("s3cr3t") && shown.contains("AWS_SECRET_ACCESS_KEY"));
    }
}

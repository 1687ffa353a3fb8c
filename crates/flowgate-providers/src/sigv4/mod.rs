//! AWS Signature Version 4, as Bedrock wants its requests signed
//! (docs/decisions/2026-12-06-sigv4-on-aws-lc.md): a canonical request (the path encoded
//! once more, the query sorted, the signed fields lower-cased, trimmed and sorted, the
//! body's SHA-256), the string to sign, the key derived from the secret, the date, the
//! region and the service, and the `Authorization` field. Checked against AWS's own
//! test-suite signature and a Bedrock request signed by botocore.

mod verify;

pub use verify::{Refusal, Signed, verify};

use aws_lc_rs::{digest, hmac};

pub use aws_lc_rs::hmac::Key as SigningKey;

/// AWS credentials (never printed: `Debug` shows the key id only).
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// A request to sign.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    /// The path as sent (already percent-encoded where it must be).
    pub path: &'a str,
    /// The query as sent, without `?` ("" for none).
    pub query: &'a str,
    /// Fields sent besides `host` and the ones signing adds, all signed.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The fields signing adds: `x-amz-date`, `x-amz-security-token` (with a session token)
/// and `authorization`, for `req` sent to `service` in `region` at `unix` seconds.
pub fn sign(
    req: &Request<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    unix: u64,
) -> Vec<(&'static str, String)> {
    let date = &amz_date(unix)[..8];
    let key = signing_key(&creds.secret_key, date, region, service);
    sign_with_key(req, creds, region, service, unix, &key)
}

/// The UTC day (`YYYYMMDD`) of `unix` seconds, as signing keys are derived for it.
pub fn day(unix: u64) -> String {
    amz_date(unix)[..8].to_string()
}

/// The key that signs every request of one UTC day (`date`, `YYYYMMDD`), region and
/// service: derived from the secret by four HMACs, so worth keeping for the day.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let mut key = mac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = mac(&key, part.as_bytes());
    }
    hmac::Key::new(hmac::HMAC_SHA256, &key)
}

/// As [`sign`], with the day's `key` ([`signing_key`] of the same date, region and
/// service) derived already.
pub fn sign_with_key(
    req: &Request<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    unix: u64,
    key: &hmac::Key,
) -> Vec<(&'static str, String)> {
    let amz_date = amz_date(unix);
    let date = &amz_date[..8];
    let mut fields: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), trim(v)))
        .collect();
    fields.push(("host".into(), req.host.to_string()));
    fields.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(t) = &creds.session_token {
        fields.push(("x-amz-security-token".into(), t.clone()));
    }
    fields.sort();
    let signed: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let mut canonical = String::new();
    canonical.push_str(req.method);
    canonical.push('\n');
    canonical.push_str(&encode(req.path, false));
    canonical.push('\n');
    canonical.push_str(&canonical_query(req.query));
    canonical.push('\n');
    for (n, v) in &fields {
        canonical.push_str(n);
        canonical.push(':');
        canonical.push_str(v);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed);
    canonical.push('\n');
    canonical.push_str(&hex(digest::digest(&digest::SHA256, req.body).as_ref()));
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let signature = hex(hmac::sign(key, to_sign.as_bytes()).as_ref());
    let mut out = vec![("x-amz-date", amz_date)];
    if let Some(t) = &creds.session_token {
        out.push(("x-amz-security-token", t.clone()));
    }
    out.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            creds.access_key
        ),
    ));
    out
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

const HEX: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// A field's value with its outer spaces removed and inner runs of spaces made one.
fn trim(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` as one path segment: every byte but RFC 3986's unreserved ones `%XX`.
pub fn encode_component(s: &str) -> String {
    encode(s, true)
}

/// RFC 3986 encoding as SigV4 has it: unreserved bytes as they are, every other byte
/// `%XX`; `/` kept in paths (`slash` false) and encoded in query parts.
pub(crate) fn encode(s: &str, slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b'/' if !slash => out.push('/'),
            _ => {
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
                out.push(char::from(HEX_UPPER[usize::from(b & 15)]));
            }
        }
    }
    out
}

/// The query's pairs, each part encoded, sorted.
fn canonical_query(q: &str) -> String {
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(k, true), encode(v, true))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `unix` seconds as `YYYYMMDDTHHMMSSZ`.
pub(crate) fn amz_date(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUGUST_30_2015: u64 = 1_440_938_160; // 2015-08-30T12:36:00Z

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_string),
        }
    }

    #[test]
    fn dates_are_written_as_aws_wants_them() {
        assert_eq!(amz_date(AUGUST_30_2015), "20150830T123600Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
    }

    #[test]
    fn the_aws_test_suite_get_vanilla_signature() {
        let req = Request {
            method: "GET",
            host: "example.amazonaws.com",
            path: "/",
            query: "",
            headers: &[],
            body: b"",
        };
        let out = sign(&req, &creds(None), "us-east-1", "service", AUGUST_30_2015);
        assert_eq!(out[0], ("x-amz-date", "20150830T123600Z".to_string()));
        assert_eq!(
            out[1].1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn a_bedrock_stream_request_signed_as_botocore_signs_it() {
        // botocore 1.43's SigV4Auth on the same request, credentials and time.
        let body = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;
        let req = Request {
            method: "POST",
            host: "bedrock-runtime.us-east-1.amazonaws.com",
            path: "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke-with-response-stream",
            query: "",
            headers: &[
                ("content-type", "application/json"),
                ("accept", "application/vnd.amazon.eventstream"),
            ],
            body,
        };
        let out = sign(
            &req,
            &creds(Some("FQoGZXIvYXdzEXAMPLETOKEN")),
            "us-east-1",
            "bedrock",
            AUGUST_30_2015,
        );
        assert_eq!(
            out[1],
            (
                "x-amz-security-token",
                "FQoGZXIvYXdzEXAMPLETOKEN".to_string()
            )
        );
        assert_eq!(
            out[2].1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, \
             SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, \
             Signature=061a7186ca19ec8ede212e15fbbddf1f9418511745f915d5fb764759f923483b"
        );
        // Another body is another signature: the body signed is the body sent.
        let other = Request { body: b"{}", ..req };
        let again = sign(
            &other,
            &creds(Some("FQoGZXIvYXdzEXAMPLETOKEN")),
            "us-east-1",
            "bedrock",
            AUGUST_30_2015,
        );
        assert_ne!(again[2].1, out[2].1);
    }

    #[test]
    fn queries_are_sorted_and_encoded_and_secrets_never_printed() {
        assert_eq!(canonical_query("b=2&a=x y&c"), "a=x%20y&b=2&c=");
        assert_eq!(encode("/a b/c:d", false), "/a%20b/c%3Ad");
        let shown = format!("{:?}", creds(Some("tok")));
        assert!(
            !shown.contains("EXAMPLEKEY") && !shown.contains("tok"),
            "{shown}"
        );
    }
}

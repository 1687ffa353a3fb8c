//! The server's side of SigV4, as AWS checks a request before serving it: the
//! `Authorization` field read apart, the key id looked up, the time checked against the
//! clock (AWS allows 5 minutes either way), and the signature computed again over the
//! request as received. The simulator uses it to answer a bad signature as AWS does.

use super::{Credentials, Request, sign};

/// How far a request's `x-amz-date` may be from the server's clock.
pub const SKEW: u64 = 5 * 60;

/// A request as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    pub query: &'a str,
    /// Every field received, names lower-case.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Why a request is refused, as AWS words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` or `x-amz-date`, or one that does not read
    /// (`IncompleteSignatureException`).
    Incomplete(String),
    /// A key id the server does not know (`UnrecognizedClientException`).
    UnknownKey,
    /// A session token missing or not the key's (`UnrecognizedClientException` too).
    BadToken,
    /// Signed too long ago or too far ahead (`InvalidSignatureException`).
    Expired,
    /// A scope for another region or service (`InvalidSignatureException`).
    Scope(String),
    /// The signature is not the request's (`InvalidSignatureException`).
    Mismatch,
}

impl Refusal {
    /// AWS's error type and message for it.
    pub fn aws(&self) -> (&'static str, String) {
        match self {
            Refusal::Incomplete(why) => ("IncompleteSignatureException", why.clone()),
            Refusal::UnknownKey | Refusal::BadToken => (
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".into(),
            ),
            Refusal::Expired => (
                "InvalidSignatureException",
                "Signature expired: the request's x-amz-date is more than 5 minutes from the server's time."
                    .into(),
            ),
            Refusal::Scope(why) => ("InvalidSignatureException", why.clone()),
            Refusal::Mismatch => (
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. Consult the service \
                 documentation for details."
                    .into(),
            ),
        }
    }
}

/// Checks `req`'s signature for `service` (in `region`, when the server has one) at
/// `now` (unix seconds), the secret of a key id found by `lookup`.
pub fn verify(
    req: &Signed<'_>,
    lookup: &dyn Fn(&str) -> Option<Credentials>,
    service: &str,
    region: Option<&str>,
    now: u64,
) -> Result<(), Refusal> {
    let field = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let incomplete = |why: &str| Refusal::Incomplete(why.to_string());
    let auth = field("authorization").ok_or_else(|| incomplete("Missing Authentication Token"))?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        incomplete("Authorization header requires the AWS4-HMAC-SHA256 algorithm")
    })?;
    let mut credential = None;
    let mut signed = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if !part.starts_with("Signature=") {
            return Err(incomplete("Authorization header has an unknown part"));
        }
    }
    let credential = credential
        .ok_or_else(|| incomplete("Authorization header requires 'Credential' parameter"))?;
    let signed = signed
        .ok_or_else(|| incomplete("Authorization header requires 'SignedHeaders' parameter"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, day, scope_region, scope_service, "aws4_request"] = scope[..] else {
        return Err(incomplete("Credential must have five parts"));
    };
    let amz = field("x-amz-date").ok_or_else(|| incomplete("x-amz-date is required"))?;
    let when = parse_amz_date(amz).ok_or_else(|| incomplete("x-amz-date does not read"))?;
    if !amz.starts_with(day) {
        return Err(Refusal::Scope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{day}' != '{}'",
            &amz[..8]
        )));
    }
    if scope_service != service {
        return Err(Refusal::Scope(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    if region.is_some_and(|r| r != scope_region) {
        return Err(Refusal::Scope(format!(
            "Credential should be scoped to a valid region, not '{scope_region}'."
        )));
    }
    let creds = lookup(key_id).ok_or(Refusal::UnknownKey)?;
    if creds.session_token.as_deref() != field("x-amz-security-token") {
        return Err(Refusal::BadToken);
    }
    if now.abs_diff(when) > SKEW {
        return Err(Refusal::Expired);
    }
    let host = field("host").ok_or_else(|| incomplete("host is required"))?;
    // The signed fields the signer adds itself are added by `sign` again.
    let mut headers = Vec::new();
    for name in signed.split(';') {
        if matches!(name, "host" | "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        let value = field(name).ok_or_else(|| incomplete("a signed header is missing"))?;
        headers.push((name, value));
    }
    let again = sign(
        &Request {
            method: req.method,
            host,
            path: req.path,
            query: req.query,
            headers: &headers,
            body: req.body,
        },
        &creds,
        scope_region,
        service,
        when,
    );
    let expected = again
        .iter()
        .find(|(n, _)| *n == "authorization")
        .map(|(_, v)| v.as_str());
    if expected == Some(auth) {
        Ok(())
    } else {
        Err(Refusal::Mismatch)
    }
}

/// `YYYYMMDDTHHMMSSZ` as unix seconds.
pub(crate) fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(test)]
mod tests {
    use super::super::amz_date;
    use super::*;

    const NOW: u64 = 1_796_560_000;

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key: "AKIDSIM".into(),
            secret_key: "secret".into(),
            session_token: token.map(str::to_string),
        }
    }

    /// A request signed with `c` at `at`, as its fields go on the wire.
    fn signed(c: &Credentials, at: u64, body: &[u8]) -> Vec<(String, String)> {
        let req = Request {
            method: "POST",
            host: "127.0.0.1:18086",
            path: "/model/anthropic.claude%3A0/invoke",
            query: "",
            headers: &[("content-type", "application/json")],
            body,
        };
        let mut fields = vec![
            ("host".to_string(), "127.0.0.1:18086".to_string()),
            ("content-type".to_string(), "application/json".to_string()),
        ];
        for (n, v) in sign(&req, c, "us-east-1", "bedrock", at) {
            fields.push((n.to_string(), v));
        }
        fields
    }

    fn check(fields: &[(String, String)], body: &[u8], now: u64) -> Result<(), Refusal> {
        let headers: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let req = Signed {
            method: "POST",
            path: "/model/anthropic.claude%3A0/invoke",
            query: "",
            headers: &headers,
            body,
        };
        let lookup = |id: &str| (id == "AKIDSIM").then(|| creds(Some("tok")));
        verify(&req, &lookup, "bedrock", Some("us-east-1"), now)
    }

    #[test]
    fn dates_read_back_as_they_were_written() {
        for t in [0, 951_782_400, 1_440_938_160, NOW] {
            assert_eq!(parse_amz_date(&amz_date(t)), Some(t));
        }
        assert_eq!(parse_amz_date("20261306T000000Z"), None);
        assert_eq!(parse_amz_date("2026"), None);
    }

    #[test]
    fn a_signed_request_passes_and_any_change_is_refused() {
        let good = signed(&creds(Some("tok")), NOW, b"{}");
        assert_eq!(check(&good, b"{}", NOW + 10), Ok(()));
        // Another body than the one signed.
        assert_eq!(check(&good, b"{ }", NOW), Err(Refusal::Mismatch));
        // Too old.
        assert_eq!(check(&good, b"{}", NOW + SKEW + 1), Err(Refusal::Expired));
        // Another secret.
        let mut wrong = creds(Some("tok"));
        wrong.secret_key = "other".into();
        assert_eq!(
            check(&signed(&wrong, NOW, b"{}"), b"{}", NOW),
            Err(Refusal::Mismatch)
        );
        // Another key id, or no token.
        let mut stranger = creds(Some("tok"));
        stranger.access_key = "AKIDOTHER".into();
        assert_eq!(
            check(&signed(&stranger, NOW, b"{}"), b"{}", NOW),
            Err(Refusal::UnknownKey)
        );
        assert_eq!(
            check(&signed(&creds(None), NOW, b"{}"), b"{}", NOW),
            Err(Refusal::BadToken)
        );
        // Nothing signed at all.
        let bare = vec![("host".to_string(), "127.0.0.1:18086".to_string())];
        assert!(matches!(
            check(&bare, b"{}", NOW),
            Err(Refusal::Incomplete(_))
        ));
    }
}

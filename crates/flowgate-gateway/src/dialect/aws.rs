//! A Bedrock pool's AWS credentials and the signature each attempt carries. Credentials
//! are found as the AWS tools find them (`flowgate_providers::aws_credentials`: the
//! environment, then the profile of the shared files), once when the pool is built, and
//! again whenever the file they came from changes (a rotation by `aws sso login` or a
//! credentials helper): the new ones are used from the next request on; a file that no
//! longer reads keeps the ones in use, with a warning. Every attempt is signed anew (a
//! retry or a hedge carries its own time and signature).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use flowgate_config::{AwsEnv, FileWatcher, KeyPath};
use flowgate_providers::aws_credentials::{self, Source};
use flowgate_providers::bedrock;
use flowgate_providers::sigv4::{self, Credentials};
use http::{HeaderName, HeaderValue};
use smallvec::SmallVec;

/// How long a burst of changes to the credentials file is let settle.
const SETTLE: Duration = Duration::from_millis(200);

/// The fields signing adds to one request.
pub(crate) type Signature = SmallVec<[(HeaderName, HeaderValue); 3]>;

/// A pool's AWS credentials, kept current.
pub(crate) struct Signer {
    env: AwsEnv,
    creds: ArcSwap<Credentials>,
    source: Source,
    /// The keys derived for today, by key id and region (four HMACs saved per request).
    derived: Mutex<Vec<Derived>>,
    _watch: Option<FileWatcher>,
}

/// A day's signing key for one key id and region.
struct Derived {
    key_id: String,
    day: String,
    region: String,
    key: Arc<sigv4::SigningKey>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The credentials `env` leads to, and where from.
fn load(env: &AwsEnv) -> Result<(Credentials, Source), String> {
    aws_credentials::load(&|k| env.var(k))
}

/// What is wrong with the AWS credentials of each Bedrock pool, by key.
pub fn check(config: &flowgate_config::Config) -> Vec<(KeyPath, String)> {
    config
        .pools
        .iter()
        .filter_map(|p| {
            let env = p.aws.as_ref()?;
            let key = KeyPath::default().key("pools").key(&p.name);
            let key = if env.profile.is_some() {
                key.key("aws_profile")
            } else {
                key.key("provider")
            };
            load(env)
                .err()
                .map(|e| (key, format!("bedrock pool {}: {e}", p.name)))
        })
        .collect()
}

impl Signer {
    /// The credentials of `env`, watched for changes when they came from a file and a
    /// runtime is there to watch.
    pub(crate) fn new(pool: &str, env: &AwsEnv) -> Result<Arc<Signer>, String> {
        let (creds, source) = load(env).map_err(|e| format!("bedrock pool {pool}: {e}"))?;
        let watched = match &source {
            Source::File { path, .. } if tokio::runtime::Handle::try_current().is_ok() => {
                flowgate_config::watch_file(path, SETTLE).ok()
            }
            _ => None,
        };
        let (watch, rx) = match watched {
            Some((w, rx)) => (Some(w), Some(rx)),
            None => (None, None),
        };
        let signer = Arc::new(Signer {
            env: env.clone(),
            creds: ArcSwap::from_pointee(creds),
            source,
            derived: Mutex::new(Vec::new()),
            _watch: watch,
        });
        if let Some(mut rx) = rx {
            let weak = Arc::downgrade(&signer);
            let pool = pool.to_string();
            tokio::spawn(async move {
                // Ends when the signer (and so its watch) is dropped.
                while rx.recv().await.is_some() {
                    let Some(s) = weak.upgrade() else { break };
                    s.reload(&pool);
                }
            });
        }
        Ok(signer)
    }

    /// Reads the credentials again, keeping the current ones if they no longer read.
    pub(crate) fn reload(&self, pool: &str) {
        match load(&self.env) {
            Ok((c, source)) => {
                tracing::info!(pool, ?source, key_id = %c.access_key, "AWS credentials read again");
                self.creds.store(Arc::new(c));
                // A secret rotated under the same key id must not sign with the old key.
                self.derived
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
            }
            Err(e) => {
                tracing::warn!(pool, error = %e, "AWS credentials no longer read; the ones in use stay");
            }
        }
    }

    /// The day's signing key of `creds` for `region`, derived once a day.
    fn key(&self, creds: &Credentials, region: &str, unix: u64) -> Arc<sigv4::SigningKey> {
        let day = sigv4::day(unix);
        let mut derived = self.derived.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = derived
            .iter()
            .find(|d| d.day == day && d.region == region && d.key_id == creds.access_key)
        {
            return d.key.clone();
        }
        let key = Arc::new(sigv4::signing_key(
            &creds.secret_key,
            &day,
            region,
            bedrock::SERVICE,
        ));
        // Yesterday's keys and a rotated secret's go.
        derived.retain(|d| d.day == day && d.key_id == creds.access_key);
        derived.push(Derived {
            key_id: creds.access_key.clone(),
            day,
            region: region.to_string(),
            key: key.clone(),
        });
        key
    }

    /// The fields that sign a `POST` of `body` to `host` + `path` for `region` at `unix`.
    pub(crate) fn sign(
        &self,
        host: &str,
        path: &str,
        body: &[u8],
        region: &str,
        unix: u64,
    ) -> Signature {
        let creds = self.creds.load();
        let key = self.key(&creds, region, unix);
        let req = sigv4::Request {
            method: "POST",
            host,
            path,
            query: "",
            headers: &[("content-type", "application/json")],
            body,
        };
        sigv4::sign_with_key(&req, &creds, region, bedrock::SERVICE, unix, &key)
            .into_iter()
            .filter_map(|(name, value)| {
                let mut v = HeaderValue::from_str(&value).ok()?;
                v.set_sensitive(true);
                Some((HeaderName::from_static(name), v))
            })
            .collect()
    }
}

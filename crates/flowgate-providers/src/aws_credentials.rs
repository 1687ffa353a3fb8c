//! AWS credentials where the AWS tools look for them, in their order: the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the profile
//! (`AWS_PROFILE`, else `default`) of the shared credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`), then of the config file
//! (`AWS_CONFIG_FILE`, else `~/.aws/config`, where a profile's section is `[profile NAME]`).
//! The environment is passed in, so that config loading and tests decide what it is.

use std::path::{Path, PathBuf};

use crate::sigv4::Credentials;

/// Where credentials were found, for `flowgate check` and the logs (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Environment,
    File { path: PathBuf, profile: String },
}

/// The credentials `env` leads to, and where they came from; what was looked at, if none.
pub fn load(env: &dyn Fn(&str) -> Option<String>) -> Result<(Credentials, Source), String> {
    if let Some(c) = from_env(env) {
        return Ok((c, Source::Environment));
    }
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let home = env("HOME").map(PathBuf::from);
    let file = |var: &str, name: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let mut looked = vec!["AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_string()];
    for (path, config) in [
        (file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), false),
        (file("AWS_CONFIG_FILE", "config"), true),
    ] {
        let Some(path) = path else { continue };
        looked.push(format!("profile {profile:?} in {}", path.display()));
        if let Some(c) = from_file(&path, &profile, config) {
            return Ok((c, Source::File { path, profile }));
        }
    }
    Err(format!(
        "no AWS credentials: looked for {}",
        looked.join(", then ")
    ))
}

/// The credentials of the environment, when both key parts are set.
pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Credentials> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    Some(Credentials {
        access_key: set("AWS_ACCESS_KEY_ID")?,
        secret_key: set("AWS_SECRET_ACCESS_KEY")?,
        session_token: set("AWS_SESSION_TOKEN"),
    })
}

/// The credentials of `profile` in the INI file at `path` (a config file names its
/// sections `[profile NAME]`, except `[default]`).
pub fn from_file(path: &Path, profile: &str, config: bool) -> Option<Credentials> {
    let text = std::fs::read_to_string(path).ok()?;
    parse(&text, profile, config)
}

fn parse(text: &str, profile: &str, config: bool) -> Option<Credentials> {
    let wanted = if config && profile != "default" {
        format!("profile {profile}")
    } else {
        profile.to_string()
    };
    let mut inside = false;
    let (mut key, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == wanted;
            continue;
        }
        if !inside {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim() {
            "aws_access_key_id" => key = Some(v),
            "aws_secret_access_key" => secret = Some(v),
            "aws_session_token" => token = Some(v),
            _ => {}
        }
    }
    Some(Credentials {
        access_key: key.filter(|k| !k.is_empty())?,
        secret_key: secret.filter(|s| !s.is_empty())?,
        session_token: token.filter(|t| !t.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn the_environment_comes_first() {
        let e = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIA1"),
            ("AWS_SECRET_ACCESS_KEY", "s1"),
            ("AWS_SESSION_TOKEN", "t1"),
            ("HOME", "/nonexistent"),
        ]);
        let (c, from) = load(&e).unwrap();
        assert_eq!(
            (c.access_key.as_str(), c.session_token.as_deref()),
            ("AKIA1", Some("t1"))
        );
        assert_eq!(from, Source::Environment);
    }

    #[test]
    fn profiles_of_the_shared_files() {
        let dir = std::env::temp_dir().join(format!("flowgate-aws-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(
            dir.join(".aws/credentials"),
            "# comment\n[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = sdef\n\n\
             [ops]\naws_access_key_id=AKIAOPS\naws_secret_access_key=sops\naws_session_token = tops\n",
        )
        .unwrap();
        std::fs::write(
            dir.join(".aws/config"),
            "[default]\nregion = us-east-1\n[profile cfg]\naws_access_key_id = AKIACFG\naws_secret_access_key = scfg\n",
        )
        .unwrap();
        let home = dir.display().to_string();
        let (c, _) = load(&env(&[("HOME", &home)])).unwrap();
        assert_eq!(c.access_key, "AKIADEF");
        let (c, from) = load(&env(&[("HOME", &home), ("AWS_PROFILE", "ops")])).unwrap();
        assert_eq!(
            (c.access_key.as_str(), c.session_token.as_deref()),
            ("AKIAOPS", Some("tops"))
        );
        assert_eq!(
            from,
            Source::File {
                path: dir.join(".aws/credentials"),
                profile: "ops".into()
            }
        );
        // Only in the config file, under `[profile cfg]`.
        let (c, _) = load(&env(&[("HOME", &home), ("AWS_PROFILE", "cfg")])).unwrap();
        assert_eq!(c.access_key, "AKIACFG");
        let e = load(&env(&[("HOME", &home), ("AWS_PROFILE", "nope")])).unwrap_err();
        assert!(e.contains("profile \"nope\""), "{e}");
        // Half a key pair in the environment is not a key pair.
        let (c, _) = load(&env(&[("HOME", &home), ("AWS_ACCESS_KEY_ID", "AKIAHALF")])).unwrap();
        assert_eq!(c.access_key, "AKIADEF");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Problems a person can act on: every key the file gets wrong in one pass (not only the
//! first serde stops at), the nearest known key for a misspelt one, and the name of the
//! route (key, category...) an array element is, since `routes[7]` alone means little.

use toml::{Table, Value};

use crate::error::{KeyPath, Seg};
use crate::raw::RawConfig;
use crate::units::distance;

/// At most this many problems are collected before giving up on the rest.
const MAX_PROBLEMS: usize = 50;

/// Deserializes `table`. A key that is unknown or of the wrong type is reported and taken
/// out, and the rest read again, so that one run reports them all; a problem that taking a
/// key out cannot get past (a missing key) ends the search. Returns the config read from
/// what was left (to be validated for more problems), if it could be, and the problems.
pub(crate) fn deserialize_all(mut table: Table) -> (Option<RawConfig>, Vec<(KeyPath, String)>) {
    let mut found = Vec::new();
    loop {
        match serde_path_to_error::deserialize(Value::Table(table.clone())) {
            Ok(raw) => return (Some(raw), found),
            Err(e) => {
                let (key, message) = parts(&e);
                let removed = found.len() < MAX_PROBLEMS && remove(&mut table, &key);
                found.push((key, message));
                if !removed {
                    return (None, found);
                }
            }
        }
    }
}

/// The key and message of a deserialization error; an unknown key gets the nearest known
/// one suggested.
fn parts(e: &serde_path_to_error::Error<toml::de::Error>) -> (KeyPath, String) {
    let mut key = KeyPath::default();
    for seg in e.path().iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => key.0.push(Seg::Index(*index)),
            serde_path_to_error::Segment::Map { key: k }
            | serde_path_to_error::Segment::Enum { variant: k } => key.0.push(Seg::Key(k.clone())),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    (key, suggest(e.inner().message().trim()))
}

/// `unknown field `x`, expected one of `a`, `b`` with the nearest of the expected keys
/// named, when one is near enough to be a misspelling.
pub(crate) fn suggest(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let known: Vec<&str> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|k| !k.is_empty())
        .collect();
    let nearest = known
        .iter()
        .map(|k| (distance(unknown, k), *k))
        .min()
        .filter(|(d, k)| *d <= (unknown.len().max(k.len()) / 3).max(1));
    match nearest {
        Some((_, k)) => format!(
            "unknown field `{unknown}`: did you mean `{k}`?{}",
            expected
                .trim_start_matches(',')
                .trim()
                .strip_prefix("expected")
                .map_or(String::new(), |list| format!(" (expected{list})"))
        ),
        None => message.to_string(),
    }
}

/// Takes the entry at `key` out of `table`; whether there was one to take (only table
/// entries are taken, never array elements: later indexes must keep naming the same
/// elements).
fn remove(table: &mut Table, key: &KeyPath) -> bool {
    remove_at(table, &key.0)
}

fn remove_at(table: &mut Table, key: &[Seg]) -> bool {
    match key {
        [Seg::Key(last)] => table.remove(last).is_some(),
        [Seg::Key(k), rest @ ..] => table.get_mut(k).is_some_and(|v| remove_in(v, rest)),
        _ => false,
    }
}

fn remove_in(v: &mut Value, key: &[Seg]) -> bool {
    match (v, key) {
        (Value::Table(t), _) => remove_at(t, key),
        (Value::Array(items), [Seg::Index(i), rest @ ..]) => {
            items.get_mut(*i).is_some_and(|v| remove_in(v, rest))
        }
        _ => false,
    }
}

/// What an array element the key is in calls itself: `route "chat"` for `routes[3]...`
/// when that route has `name = "chat"` (the innermost such element).
pub(crate) fn label(table: &Table, key: &KeyPath) -> Option<String> {
    let mut at: Option<&Value> = None;
    let mut found = None;
    let mut last_key = "";
    for seg in &key.0 {
        let next = match (seg, at) {
            (Seg::Key(k), None) => {
                last_key = k;
                table.get(k)
            }
            (Seg::Key(k), Some(Value::Table(t))) => {
                last_key = k;
                t.get(k)
            }
            (Seg::Index(i), Some(Value::Array(items))) => {
                let item = items.get(*i);
                if let Some(name) = item.and_then(|v| v.get("name")).and_then(Value::as_str) {
                    found = Some(format!("{} {name:?}", singular(last_key)));
                }
                item
            }
            _ => None,
        };
        match next {
            Some(v) => at = Some(v),
            None => break,
        }
    }
    found
}

fn singular(array: &str) -> String {
    match array {
        "routes" => "route".into(),
        "keys" => "key".into(),
        "tokens" => "token".into(),
        "categories" => "category".into(),
        "rate_limits" => "rate limit".into(),
        "endpoints" => "endpoint".into(),
        other => other.trim_end_matches('s').replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_key_is_suggested_when_near_enough() {
        let m = "unknown field `lisen`, expected one of `listen`, `admin_listen`, `workers`";
        let s = suggest(m);
        assert!(
            s.starts_with("unknown field `lisen`: did you mean `listen`?"),
            "{s}"
        );
        assert!(s.contains("expected one of `listen`"), "{s}");
        let far = "unknown field `colour`, expected one of `listen`, `workers`";
        assert_eq!(suggest(far), far);
        assert_eq!(suggest("invalid type: string"), "invalid type: string");
    }

    #[test]
    fn labels_name_the_array_element() {
        let t: Table =
            "[[routes]]\nname = \"a\"\n[[routes]]\nname = \"chat\"\ncache = { ttl = 1 }\n"
                .parse()
                .unwrap();
        assert_eq!(
            label(&t, &KeyPath::parse("routes[1].cache.ttl")).as_deref(),
            Some("route \"chat\"")
        );
        assert_eq!(label(&t, &KeyPath::parse("server.listen")), None);
    }

    #[test]
    fn only_table_entries_are_removed() {
        let mut t: Table = "[server]\nlisen = 1\n[[routes]]\nprefx = \"/\"\n"
            .parse()
            .unwrap();
        assert!(remove(&mut t, &KeyPath::parse("server.lisen")));
        assert!(remove(&mut t, &KeyPath::parse("routes[0].prefx")));
        assert!(!remove(&mut t, &KeyPath::parse("routes[0]")));
        assert!(!remove(&mut t, &KeyPath::parse("nothing.here")));
        assert!(t["server"].as_table().unwrap().is_empty());
        assert!(t["routes"][0].as_table().unwrap().is_empty());
    }
}

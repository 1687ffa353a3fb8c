//! Environment overrides: `FLOWGATE__SECTION__KEY=value` sets `section.key`.
//!
//! Segments are separated by `__` and lower-cased; a numeric segment indexes an array
//! (`FLOWGATE__ROUTES__0__POOL`). The value is read as a TOML value when it parses as one
//! (`8080`, `true`, `"x"`, `["a","b"]`) and as a plain string otherwise.

use toml::{Table, Value};

use crate::error::{KeyPath, Seg};

/// The prefix of every override variable.
pub const PREFIX: &str = "FLOWGATE__";

/// One override taken from the environment.
#[derive(Debug, Clone)]
pub(crate) struct Override {
    pub var: String,
    pub path: KeyPath,
    pub value: Value,
}

/// Picks the `FLOWGATE__*` variables out of `vars`.
pub(crate) fn overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .into_iter()
        .filter_map(|(var, raw)| {
            let rest = var.strip_prefix(PREFIX)?;
            let segs = rest
                .split("__")
                .map(|s| match s.parse::<usize>() {
                    Ok(i) => Seg::Index(i),
                    Err(_) => Seg::Key(s.to_ascii_lowercase()),
                })
                .collect::<Vec<_>>();
            if segs.is_empty()
                || segs
                    .iter()
                    .any(|s| matches!(s, Seg::Key(k) if k.is_empty()))
            {
                return None;
            }
            Some(Override {
                path: KeyPath(segs),
                value: parse_value(&raw),
                var,
            })
        })
        .collect();
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

fn parse_value(raw: &str) -> Value {
    let doc = format!("v = {raw}");
    match doc.parse::<Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_string())),
        Err(_) => Value::String(raw.to_string()),
    }
}

/// Applies one override; returns why it could not be applied.
pub(crate) fn apply(root: &mut Table, o: &Override) -> Result<(), String> {
    let Some((last, parents)) = o.path.0.split_last() else {
        return Err("empty key".into());
    };
    let mut cur = RefMut::Table(root);
    for seg in parents {
        cur = match (cur, seg) {
            (RefMut::Table(t), Seg::Key(k)) => {
                let v = t
                    .entry(k.clone())
                    .or_insert_with(|| Value::Table(Table::new()));
                RefMut::of(v)?
            }
            (RefMut::Array(a), Seg::Index(i)) => {
                let len = a.len();
                let v = a.get_mut(*i).ok_or_else(|| {
                    format!("index {i} is out of range (the array has {len} element(s))")
                })?;
                RefMut::of(v)?
            }
            (RefMut::Table(_), Seg::Index(i)) => return Err(format!("`{i}` indexes a table")),
            (RefMut::Array(_), Seg::Key(k)) => {
                return Err(format!("`{k}` is not an index into an array"));
            }
        };
    }
    match (cur, last) {
        (RefMut::Table(t), Seg::Key(k)) => {
            t.insert(k.clone(), o.value.clone());
            Ok(())
        }
        (RefMut::Array(a), Seg::Index(i)) => match a.get_mut(*i) {
            Some(slot) => {
                *slot = o.value.clone();
                Ok(())
            }
            None => Err(format!("index {i} is out of range")),
        },
        _ => Err("the key does not fit the shape of the configuration".into()),
    }
}

enum RefMut<'a> {
    Table(&'a mut Table),
    Array(&'a mut Vec<Value>),
}

impl<'a> RefMut<'a> {
    fn of(v: &'a mut Value) -> Result<Self, String> {
        match v {
            Value::Table(t) => Ok(RefMut::Table(t)),
            Value::Array(a) => Ok(RefMut::Array(a)),
            other => Err(format!("cannot descend into a {}", other.type_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_applies() {
        let mut t: Table = "[[routes]]\npool = 'a'\n".parse().unwrap();
        let os = overrides(vars(&[
            ("FLOWGATE__SERVER__LISTEN", "127.0.0.1:1"),
            ("FLOWGATE__ROUTES__0__POOL", "b"),
            ("FLOWGATE__LIMITS__MAX_HEADERS", "7"),
            ("OTHER", "x"),
        ]));
        assert_eq!(os.len(), 3);
        for o in &os {
            apply(&mut t, o).unwrap();
        }
        assert_eq!(t["server"]["listen"].as_str(), Some("127.0.0.1:1"));
        assert_eq!(t["routes"][0]["pool"].as_str(), Some("b"));
        assert_eq!(t["limits"]["max_headers"].as_integer(), Some(7));
    }

    #[test]
    fn out_of_range_index_is_an_error() {
        let mut t = Table::new();
        t.insert("routes".into(), Value::Array(vec![]));
        let os = overrides(vars(&[("FLOWGATE__ROUTES__3__POOL", "b")]));
        assert!(apply(&mut t, &os[0]).unwrap_err().contains("out of range"));
    }
}

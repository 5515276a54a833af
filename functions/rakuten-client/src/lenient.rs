//! Small, forgiving `deserialize_with` helpers for the Rakuten wire format.
//!
//! The same field arrives as a number in one API and as a string in another
//! (`"itemPrice": "3980"` vs `2808`), empty strings stand for "no value", keys
//! for empty lists are simply left out, and `formatVersion=1` wraps every array
//! element in a singular key (`{"Item": {...}}`). These helpers accept all of
//! that so the model structs can stay plain.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Singular keys that `formatVersion=1` wraps array elements in.
const WRAPPER_KEYS: &[&str] = &[
    "Item", "item", "child", "parent", "brother", "sibling", "ancestor", "tagGroup", "tag", "genre",
];

/// Removes a `formatVersion=1` wrapper: `{"Item": {...}}` → `{...}`.
/// Anything else is returned unchanged.
pub(crate) fn unwrap_element(value: Value) -> Value {
    match value {
        Value::Object(mut map) if map.len() == 1 => {
            let key = map.keys().next().cloned().unwrap_or_default();
            if WRAPPER_KEYS.contains(&key.as_str()) && map[&key].is_object() {
                map.remove(&key).unwrap_or(Value::Null)
            } else {
                Value::Object(map)
            }
        }
        other => other,
    }
}

/// Converts a JSON value into an `i64`: integers, integral floats and strings
/// holding either. `Ok(None)` for `null` and blank strings; `Err` for anything
/// that is not a number.
fn value_to_i64(value: &Value) -> Result<Option<i64>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(Some(f as i64)),
                    _ => Err(format!("number {n} is not an integer")),
                }
            }
        }
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Ok(None);
            }
            if let Ok(i) = t.parse::<i64>() {
                return Ok(Some(i));
            }
            match t.parse::<f64>() {
                Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e18 => {
                    Ok(Some(f as i64))
                }
                _ => Err(format!("string {s:?} is not an integer")),
            }
        }
        Value::Bool(b) => Ok(Some(i64::from(*b))),
        _ => Err("expected an integer".to_string()),
    }
}

fn value_to_f64(value: &Value) -> Result<Option<f64>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Ok(None);
            }
            match t.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(format!("string {s:?} is not a number")),
            }
        }
        _ => Err("expected a number".to_string()),
    }
}

fn value_to_string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Optional integer: number or numeric string; `null`, `""` and unparsable
/// values become `None` (one odd field must not sink a whole page).
pub(crate) fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(value_to_i64(&v).ok().flatten())
}

/// Optional `i32`, same rules as [`opt_i64`]; out-of-range values become `None`.
pub(crate) fn opt_i32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    Ok(opt_i64(d)?.and_then(|i| i32::try_from(i).ok()))
}

/// Optional float: number or numeric string; `null`, `""` and unparsable
/// values become `None`.
pub(crate) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(value_to_f64(&v).ok().flatten())
}

/// Required integer: number or numeric string. Missing values are an error
/// unless the field also has `#[serde(default)]`.
pub(crate) fn req_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    match value_to_i64(&v) {
        Ok(Some(i)) => Ok(i),
        Ok(None) => Err(D::Error::custom("expected an integer, got null or empty")),
        Err(e) => Err(D::Error::custom(e)),
    }
}

/// Optional text: strings as-is (an empty string becomes `None`), numbers
/// rendered as text.
pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(value_to_string(v).filter(|s| !s.is_empty()))
}

/// Text that may arrive as a number; `null` becomes the empty string.
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(value_to_string(v).unwrap_or_default())
}

/// A list whose key may be missing or `null` (→ empty) and whose elements may be
/// wrapped by `formatVersion=1`.
pub(crate) fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|el| serde_json::from_value(unwrap_element(el)).map_err(D::Error::custom))
            .collect(),
        // A single object where a list was expected: take it as a one-element list.
        obj @ Value::Object(_) => serde_json::from_value(unwrap_element(obj))
            .map(|t| vec![t])
            .map_err(D::Error::custom),
        other => Err(D::Error::custom(format!(
            "expected a list, got {}",
            kind_of(&other)
        ))),
    }
}

/// An optional object that may be wrapped by `formatVersion=1`. An empty
/// list or `null` becomes `None`.
pub(crate) fn opt_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Array(a) if a.is_empty() => Ok(None),
        Value::Array(mut a) if a.len() == 1 => serde_json::from_value(unwrap_element(a.remove(0)))
            .map(Some)
            .map_err(D::Error::custom),
        v @ Value::Object(_) => serde_json::from_value(unwrap_element(v))
            .map(Some)
            .map_err(D::Error::custom),
        other => Err(D::Error::custom(format!(
            "expected an object, got {}",
            kind_of(&other)
        ))),
    }
}

/// A list of integers (e.g. `tagIds`), each a number or numeric string;
/// missing or `null` → empty; blank entries are skipped.
pub(crate) fn i64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for el in &items {
                if let Some(i) = value_to_i64(el).map_err(D::Error::custom)? {
                    out.push(i);
                }
            }
            Ok(out)
        }
        // "1,2,3" as a single string.
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<i64>().map_err(D::Error::custom))
            .collect(),
        other => value_to_i64(&other)
            .map(|o| o.into_iter().collect())
            .map_err(D::Error::custom),
    }
}

/// An image list: v2 plain strings or v1 `{"imageUrl": "…"}` objects; missing
/// or `null` → empty; empty strings are skipped.
pub(crate) fn image_urls<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items = match Value::deserialize(d)? {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => vec![other],
    };
    let mut out = Vec::with_capacity(items.len());
    for el in items {
        let url = match el {
            Value::String(s) => Some(s),
            Value::Object(mut map) => match map.remove("imageUrl") {
                Some(Value::String(s)) => Some(s),
                _ => None,
            },
            _ => None,
        };
        if let Some(u) = url.filter(|u| !u.is_empty()) {
            out.push(u);
        }
    }
    Ok(out)
}

pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

//! The JSONPath subset: `$`, `$.a.b`, `$.a[0]`, `$['a']` and the same on the
//! context object (`$$…`). No wildcards, filters, slices or recursive descent.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    Field(String),
    Index(usize),
}

/// A parsed path, either on the state's (effective) input or on the context object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    pub context: bool,
    pub segments: Vec<Segment>,
    pub text: String,
}

/// Context-object fields the interpreter provides (`$$.<first>.<second>`).
const CONTEXT_FIELDS: &[(&str, &[&str])] = &[
    ("Execution", &["Id", "Name", "Input", "StartTime"]),
    ("StateMachine", &["Id", "Name"]),
    ("State", &["Name", "EnteredTime", "RetryCount"]),
];

impl Path {
    pub fn parse(text: &str) -> Result<Path, String> {
        let (context, rest) = if let Some(r) = text.strip_prefix("$$") {
            (true, r)
        } else if let Some(r) = text.strip_prefix('$') {
            (false, r)
        } else {
            return Err(format!("path {text:?} must start with '$' or '$$'"));
        };
        let chars: Vec<char> = rest.chars().collect();
        let mut i = 0;
        let mut segments = Vec::new();
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if name.is_empty() {
                        return Err(format!(
                            "path {text:?}: empty field name (recursive descent '..' is not supported)"
                        ));
                    }
                    if name.contains(['*', '?', '@', '(', ')', ']', '\'', '"', ' ']) {
                        return Err(format!(
                            "path {text:?}: unsupported field name {name:?} (wildcards and filters are not supported)"
                        ));
                    }
                    segments.push(Segment::Field(name));
                }
                '[' => {
                    i += 1;
                    if i < chars.len() && (chars[i] == '\'' || chars[i] == '"') {
                        let quote = chars[i];
                        i += 1;
                        let start = i;
                        while i < chars.len() && chars[i] != quote {
                            i += 1;
                        }
                        if i >= chars.len() {
                            return Err(format!("path {text:?}: unterminated quoted name"));
                        }
                        let name: String = chars[start..i].iter().collect();
                        i += 1;
                        if i >= chars.len() || chars[i] != ']' {
                            return Err(format!("path {text:?}: expected ']' after quoted name"));
                        }
                        i += 1;
                        segments.push(Segment::Field(name));
                    } else {
                        let start = i;
                        while i < chars.len() && chars[i] != ']' {
                            i += 1;
                        }
                        if i >= chars.len() {
                            return Err(format!("path {text:?}: unterminated '['"));
                        }
                        let inner: String = chars[start..i].iter().collect();
                        i += 1;
                        let index: usize = inner.trim().parse().map_err(|_| {
                            format!(
                                "path {text:?}: unsupported subscript [{inner}] (only [n] and ['name'] are supported)"
                            )
                        })?;
                        segments.push(Segment::Index(index));
                    }
                }
                c => {
                    return Err(format!("path {text:?}: unexpected character {c:?}"));
                }
            }
        }
        let path = Path {
            context,
            segments,
            text: text.to_string(),
        };
        if context {
            path.check_context()?;
        }
        Ok(path)
    }

    /// Only the context fields listed in [`CONTEXT_FIELDS`] exist here.
    fn check_context(&self) -> Result<(), String> {
        let mut it = self.segments.iter();
        let Some(first) = it.next() else {
            return Ok(());
        };
        let Segment::Field(first) = first else {
            return Err(format!("context path {:?} is not supported", self.text));
        };
        let Some((_, seconds)) = CONTEXT_FIELDS.iter().find(|(f, _)| f == first) else {
            return Err(format!(
                "context path {:?}: $$.{first} is not supported (supported: $$.Execution, $$.StateMachine, $$.State)",
                self.text
            ));
        };
        match it.next() {
            None => Ok(()),
            Some(Segment::Field(second)) if seconds.contains(&second.as_str()) => {
                if second != "Input" && it.next().is_some() {
                    return Err(format!("context path {:?} is not supported", self.text));
                }
                Ok(())
            }
            Some(_) => Err(format!(
                "context path {:?} is not supported (supported under $$.{first}: {})",
                self.text,
                seconds.join(", ")
            )),
        }
    }

    /// `true` when the path may be used as a ResultPath (fields only, not `$$`).
    pub fn is_reference_path(&self) -> bool {
        !self.context && self.segments.iter().all(|s| matches!(s, Segment::Field(_)))
    }

    pub fn get<'v>(&self, input: &'v Value, context: &'v Value) -> Option<&'v Value> {
        let mut cur = if self.context { context } else { input };
        for seg in &self.segments {
            cur = match (seg, cur) {
                (Segment::Field(name), Value::Object(map)) => map.get(name)?,
                (Segment::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// Writes `value` at this (reference) path inside `root`, creating objects on the
    /// way. Fails when something on the way exists but is not an object.
    pub fn set(&self, root: Value, value: Value) -> Result<Value, String> {
        let fields: Vec<&str> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Field(f) => f.as_str(),
                Segment::Index(_) => "",
            })
            .collect();
        let Some((last, parents)) = fields.split_last() else {
            return Ok(value);
        };
        let mut root = root;
        let mut cur = match &mut root {
            Value::Object(map) => map,
            other => {
                return Err(format!(
                    "unable to apply ResultPath {:?}: the state input is {} and not an object",
                    self.text,
                    kind(other)
                ))
            }
        };
        for field in parents {
            let entry = cur
                .entry(field.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            cur = match entry {
                Value::Object(map) => map,
                other => {
                    return Err(format!(
                        "unable to apply ResultPath {:?}: field {field:?} is {} and not an object",
                        self.text,
                        kind(other)
                    ))
                }
            };
        }
        cur.insert(last.to_string(), value);
        Ok(root)
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_reads_subset() {
        let input = json!({"a": {"b": [10, {"c": "x"}]}, "d e": 1});
        let ctx = json!({"State": {"Name": "S"}});
        let get = |p: &str| Path::parse(p).unwrap().get(&input, &ctx).cloned();
        assert_eq!(get("$"), Some(input.clone()));
        assert_eq!(get("$.a.b[0]"), Some(json!(10)));
        assert_eq!(get("$.a.b[1].c"), Some(json!("x")));
        assert_eq!(get("$['a']['b'][1]['c']"), Some(json!("x")));
        assert_eq!(get("$['d e']"), Some(json!(1)));
        assert_eq!(get("$.missing"), None);
        assert_eq!(get("$$.State.Name"), Some(json!("S")));
    }

    #[test]
    fn rejects_unsupported_syntax() {
        for p in [
            "a.b",
            "$..a",
            "$.a[*]",
            "$.a[?(@.x)]",
            "$.a[0:2]",
            "$.*",
            "$$.Task.Token",
            "$$.Map.Item",
            "$$.Execution.RoleArn",
        ] {
            assert!(Path::parse(p).is_err(), "{p} should be rejected");
        }
        assert!(Path::parse("$$.Execution.Input.run_id").is_ok());
    }

    #[test]
    fn set_creates_objects_and_rejects_non_objects() {
        let p = Path::parse("$.x.y").unwrap();
        assert_eq!(
            p.set(json!({"a": 1}), json!(2)).unwrap(),
            json!({"a": 1, "x": {"y": 2}})
        );
        assert!(p.set(json!({"x": 3}), json!(2)).is_err());
        assert!(p.set(json!("s"), json!(2)).is_err());
        assert_eq!(
            Path::parse("$").unwrap().set(json!(1), json!(2)).unwrap(),
            json!(2)
        );
    }
}

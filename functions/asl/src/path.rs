//! Reference paths: `$`, `$.a.b`, `$.a[0]` on the state's input and `$$.Execution.Id`-style
//! paths on the context object. That is all the jobnet writes; wildcards, filters, slices,
//! recursive descent and `['quoted']` names are rejected when the definition is loaded, so
//! a path the runner cannot evaluate never reaches an execution.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    Field(String),
    Index(usize),
}

/// A parsed path, on the state's (effective) input or, with `$$`, on the context object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    pub context: bool,
    pub segments: Vec<Segment>,
    /// As written, for error messages.
    pub text: String,
}

/// The context object the interpreter builds (`$$.<first>.<second>`); anything else under
/// `$$` would only fail at run time, so it is refused at load time.
const CONTEXT_FIELDS: &[(&str, &[&str])] = &[
    ("Execution", &["Id", "Name", "Input", "StartTime"]),
    ("StateMachine", &["Id", "Name"]),
    ("State", &["Name", "EnteredTime", "RetryCount"]),
];

impl Path {
    /// `$` alone: the whole input (the default of InputPath, OutputPath and ResultPath).
    pub fn root() -> Path {
        Path {
            context: false,
            segments: vec![],
            text: "$".into(),
        }
    }

    pub fn parse(text: &str) -> Result<Path, String> {
        let (context, mut rest) = if let Some(r) = text.strip_prefix("$$") {
            (true, r)
        } else if let Some(r) = text.strip_prefix('$') {
            (false, r)
        } else {
            return Err(format!("path {text:?} must start with '$' or '$$'"));
        };
        let mut segments = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let name = &r[..end];
                if name.is_empty() {
                    return Err(format!(
                        "path {text:?}: empty field name ('..' is not supported)"
                    ));
                }
                if name.contains(['*', '?', '@', '(', ')', ']', '\'', '"', ' ']) {
                    return Err(format!(
                        "path {text:?}: unsupported field name {name:?} (wildcards and filters are not supported)"
                    ));
                }
                segments.push(Segment::Field(name.to_string()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r
                    .find(']')
                    .ok_or_else(|| format!("path {text:?}: unterminated '['"))?;
                let index = r[..end].parse().map_err(|_| {
                    format!(
                        "path {text:?}: unsupported subscript [{}] (only an array index [n] is supported)",
                        &r[..end]
                    )
                })?;
                segments.push(Segment::Index(index));
                rest = &r[end + 1..];
            } else {
                return Err(format!(
                    "path {text:?}: unexpected {:?} (expected '.name' or '[n]')",
                    rest.chars().next().unwrap_or_default()
                ));
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

    /// Only the fields in [`CONTEXT_FIELDS`] exist; below them only `Execution.Input` has
    /// structure (the execution input).
    fn check_context(&self) -> Result<(), String> {
        let text = &self.text;
        let (first, second) = match self.segments.as_slice() {
            [] => return Ok(()),
            [Segment::Field(f)] => (f, None),
            [Segment::Field(f), Segment::Field(s)] => (f, Some(s)),
            [Segment::Field(f), Segment::Field(s), ..] if f == "Execution" && s == "Input" => {
                return Ok(())
            }
            _ => return Err(format!("context path {text:?} is not supported")),
        };
        let Some((_, seconds)) = CONTEXT_FIELDS.iter().find(|(f, _)| f == first) else {
            return Err(format!(
                "context path {text:?}: $$.{first} is not supported (supported: $$.Execution, $$.StateMachine, $$.State)"
            ));
        };
        match second {
            Some(s) if !seconds.contains(&s.as_str()) => Err(format!(
                "context path {text:?} is not supported (supported under $$.{first}: {})",
                seconds.join(", ")
            )),
            _ => Ok(()),
        }
    }

    /// `true` when the path may be a ResultPath: fields only, on the input.
    pub fn is_reference_path(&self) -> bool {
        !self.context && self.segments.iter().all(|s| matches!(s, Segment::Field(_)))
    }

    /// The value at this path, `None` when it selects nothing.
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

    /// Writes `value` at this (reference) path inside `root`, creating objects on the way
    /// (ResultPath semantics). Fails when something on the way exists but is not an object.
    pub fn set(&self, root: Value, value: Value) -> Result<Value, String> {
        let fields: Vec<&str> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Field(f) => f.as_str(),
                Segment::Index(_) => unreachable!("ResultPath is checked to be fields only"),
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

/// "a string", "an object", … for error messages.
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
    fn reads_fields_indexes_and_context() {
        let input = json!({"a": {"b": [10, {"c": "x"}]}});
        let ctx = json!({"State": {"Name": "S"}, "Execution": {"Input": {"run_id": "r"}}});
        let get = |p: &str| Path::parse(p).unwrap().get(&input, &ctx).cloned();
        assert_eq!(get("$"), Some(input.clone()));
        assert_eq!(get("$.a.b[0]"), Some(json!(10)));
        assert_eq!(get("$.a.b[1].c"), Some(json!("x")));
        assert_eq!(get("$.a.b[2]"), None);
        assert_eq!(get("$.missing"), None);
        assert_eq!(get("$.a.b.c"), None, "a field of an array selects nothing");
        assert_eq!(get("$$.State.Name"), Some(json!("S")));
        assert_eq!(get("$$.Execution.Input.run_id"), Some(json!("r")));
        // `$[n]` on an array input (a Parallel state's result).
        let out = json!([1, {"error": 2}]);
        let p = Path::parse("$[1]").unwrap();
        assert_eq!(p.get(&out, &ctx), Some(&json!({"error": 2})));
    }

    #[test]
    fn rejects_what_it_cannot_evaluate() {
        for p in [
            "a.b",
            "$..a",
            "$.a[*]",
            "$.a[?(@.x)]",
            "$.a[0:2]",
            "$.*",
            "$['a']",
            "$.a[0",
            "$x",
            "$$.Task.Token",
            "$$.Map.Item",
            "$$.Execution.RoleArn",
            "$$.State.Name.x",
            "$$[0]",
        ] {
            let e = Path::parse(p).unwrap_err();
            assert!(e.contains(p), "{p}: the message names the path: {e}");
        }
        for p in [
            "$",
            "$$",
            "$$.Execution",
            "$$.Execution.Id",
            "$$.Execution.StartTime",
            "$$.StateMachine.Id",
            "$$.State.RetryCount",
        ] {
            assert!(Path::parse(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn reference_paths_are_input_fields_only() {
        assert!(Path::parse("$.a.b").unwrap().is_reference_path());
        assert!(Path::root().is_reference_path());
        assert!(!Path::parse("$.a[0]").unwrap().is_reference_path());
        assert!(!Path::parse("$$.State.Name").unwrap().is_reference_path());
    }

    #[test]
    fn set_creates_objects_and_rejects_non_objects() {
        let p = Path::parse("$.x.y").unwrap();
        assert_eq!(
            p.set(json!({"a": 1}), json!(2)).unwrap(),
            json!({"a": 1, "x": {"y": 2}})
        );
        assert_eq!(
            p.set(json!({"x": {"y": 1, "z": 3}}), json!(2)).unwrap(),
            json!({"x": {"y": 2, "z": 3}})
        );
        let e = p.set(json!({"x": 3}), json!(2)).unwrap_err();
        assert!(e.contains(r#"field "x" is a number"#), "{e}");
        assert!(p.set(json!("s"), json!(2)).is_err());
        assert_eq!(Path::root().set(json!(1), json!(2)).unwrap(), json!(2));
    }
}

//! Payload templates (Parameters, ResultSelector): JSON copied as written, except fields
//! named `key.$`, whose string value is a path evaluated into `key`. Intrinsic functions
//! (`States.Format(…)` and friends) are not used by the jobnet and are refused at load
//! time with the field named, rather than half-implemented.

use serde_json::{Map, Value};

use crate::path::Path;

/// A compiled payload template.
#[derive(Debug, Clone)]
pub(crate) enum Template {
    Lit(Value),
    Obj(Vec<(String, Template)>),
    Arr(Vec<Template>),
    /// The written field name (`key.$`, for messages) and its path.
    Path(String, Path),
}

impl Template {
    pub fn compile(v: &Value) -> Result<Template, String> {
        Ok(match v {
            Value::Object(map) => {
                let mut fields = Vec::with_capacity(map.len());
                for (k, v) in map {
                    let Some(key) = k.strip_suffix(".$") else {
                        fields.push((k.clone(), Template::compile(v)?));
                        continue;
                    };
                    let Value::String(text) = v else {
                        return Err(format!("field {k:?} must be a path string"));
                    };
                    if map.contains_key(key) {
                        return Err(format!("fields {key:?} and {k:?} collide"));
                    }
                    if text.starts_with("States.") {
                        return Err(format!(
                            "field {k:?}: intrinsic functions are not supported ({text:?})"
                        ));
                    }
                    let path = Path::parse(text).map_err(|e| format!("field {k:?}: {e}"))?;
                    fields.push((key.to_string(), Template::Path(k.clone(), path)));
                }
                Template::Obj(fields)
            }
            Value::Array(items) => Template::Arr(
                items
                    .iter()
                    .map(Template::compile)
                    .collect::<Result<_, _>>()?,
            ),
            other => Template::Lit(other.clone()),
        })
    }

    /// The payload for `input`; a path that selects nothing is an error (the caller
    /// raises it as States.Runtime).
    pub fn eval(&self, input: &Value, ctx: &Value) -> Result<Value, String> {
        Ok(match self {
            Template::Lit(v) => v.clone(),
            Template::Obj(fields) => {
                let mut map = Map::new();
                for (k, t) in fields {
                    map.insert(k.clone(), t.eval(input, ctx)?);
                }
                Value::Object(map)
            }
            Template::Arr(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.eval(input, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Path(key, p) => p.get(input, ctx).cloned().ok_or_else(|| {
                format!(
                    "The value for the field '{key}' could not be computed: Invalid path '{}': no results for the path",
                    p.text
                )
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(template: Value, input: Value) -> Result<Value, String> {
        let ctx = json!({"Execution": {"Id": "exec-1"}, "StateMachine": {"Id": "sm-1"}});
        Template::compile(&template).unwrap().eval(&input, &ctx)
    }

    #[test]
    fn copies_literals_and_evaluates_paths_at_any_depth() {
        // The shape of the jobnet's Guard Parameters.
        let out = eval(
            json!({
                "FunctionName": "guard",
                "Payload": {
                    "input.$": "$",
                    "state_machine_arn.$": "$$.StateMachine.Id",
                    "execution_arn.$": "$$.Execution.Id",
                    "max_waits": "10",
                    "list": [1, {"first.$": "$.items[0]"}],
                }
            }),
            json!({"items": ["a", "b"]}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "FunctionName": "guard",
                "Payload": {
                    "input": {"items": ["a", "b"]},
                    "state_machine_arn": "sm-1",
                    "execution_arn": "exec-1",
                    "max_waits": "10",
                    "list": [1, {"first": "a"}],
                }
            })
        );
        // A ResultSelector over a Parallel state's array result.
        assert_eq!(
            eval(
                json!({"genre.$": "$[0]", "tag.$": "$[1]"}),
                json!([{"g": 1}, {"t": 2}])
            )
            .unwrap(),
            json!({"genre": {"g": 1}, "tag": {"t": 2}})
        );
        // A selected null is a value, not a missing one.
        assert_eq!(
            eval(json!({"a.$": "$.n"}), json!({"n": null})).unwrap(),
            json!({"a": null})
        );
    }

    #[test]
    fn a_path_that_selects_nothing_names_the_field() {
        let e = eval(json!({"p": {"run_id.$": "$.guard.run_id"}}), json!({})).unwrap_err();
        assert_eq!(
            e,
            "The value for the field 'run_id.$' could not be computed: Invalid path '$.guard.run_id': no results for the path"
        );
    }

    #[test]
    fn refuses_intrinsics_bad_paths_and_collisions() {
        let err = |t: Value| Template::compile(&t).unwrap_err();
        let e = err(json!({"msg.$": "States.Format('{}', $.a)"}));
        assert!(
            e.starts_with(r#"field "msg.$": intrinsic functions are not supported"#),
            "{e}"
        );
        assert!(err(json!({"a": {"b.$": "$.x[*]"}})).contains(r#"field "b.$""#));
        assert!(err(json!({"a.$": 1})).contains("must be a path string"));
        assert!(err(json!({"a.$": "no-path"})).contains("must start with '$'"));
        assert!(err(json!({"a": 1, "a.$": "$.a"})).contains("collide"));
    }
}

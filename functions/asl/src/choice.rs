//! Choice rules: `{"Variable": path, <operator>: value, "Next": state}` with the three
//! operators the jobnet uses (StringEquals, BooleanEquals, IsPresent). Other operators and
//! the And/Or/Not combinators are refused at load time by name, so a definition that starts
//! using one fails loudly until the operator is added here (and to the cross-check).

use serde_json::Value;

use crate::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    StringEquals(String),
    BooleanEquals(bool),
    IsPresent(bool),
}

/// One entry of `Choices`.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub variable: Path,
    pub op: Op,
    pub next: String,
}

const OPERATORS: &str = "StringEquals, BooleanEquals, IsPresent";

impl Rule {
    /// Parses one `Choices` entry; the error says what is wrong with it (the caller adds
    /// the state and `Choices[i]`).
    pub fn parse(v: &Value) -> Result<Rule, String> {
        let Value::Object(map) = v else {
            return Err("a choice rule must be an object".into());
        };
        let (mut variable, mut op, mut next) = (None, None, None);
        for (k, val) in map {
            let parsed = match (k.as_str(), val) {
                ("Comment", _) => continue,
                ("Variable", Value::String(s)) => {
                    variable = Some(Path::parse(s).map_err(|e| format!("\"Variable\": {e}"))?);
                    continue;
                }
                ("Next", Value::String(s)) => {
                    next = Some(s.clone());
                    continue;
                }
                ("StringEquals", Value::String(s)) => Op::StringEquals(s.clone()),
                ("BooleanEquals", Value::Bool(b)) => Op::BooleanEquals(*b),
                ("IsPresent", Value::Bool(b)) => Op::IsPresent(*b),
                ("Variable" | "Next" | "StringEquals" | "BooleanEquals" | "IsPresent", _) => {
                    return Err(format!("{k:?} has a value of the wrong type: {val}"))
                }
                _ => {
                    return Err(format!(
                        "unsupported choice rule field {k:?} (supported operators: {OPERATORS})"
                    ))
                }
            };
            if op.replace(parsed).is_some() {
                return Err(format!("more than one operator ({k:?})"));
            }
        }
        Ok(Rule {
            variable: variable.ok_or("a choice rule needs \"Variable\"")?,
            op: op.ok_or_else(|| format!("a choice rule needs an operator ({OPERATORS})"))?,
            next: next.ok_or("a choice rule needs \"Next\"")?,
        })
    }

    /// Whether the rule matches. A `Variable` that selects nothing is an error (the caller
    /// raises States.Runtime, as Step Functions does), except for IsPresent; a value of
    /// another type than the operator's simply does not match.
    pub fn matches(&self, input: &Value, ctx: &Value) -> Result<bool, String> {
        let value = self.variable.get(input, ctx);
        if let Op::IsPresent(want) = self.op {
            return Ok(value.is_some() == want);
        }
        let Some(value) = value else {
            return Err(format!(
                "Invalid path '{}': The choice state's condition path references an invalid value.",
                self.variable.text
            ));
        };
        Ok(match &self.op {
            Op::StringEquals(s) => value.as_str() == Some(s.as_str()),
            Op::BooleanEquals(b) => value.as_bool() == Some(*b),
            Op::IsPresent(_) => unreachable!("handled above"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> Rule {
        Rule::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    fn check(r: Value, input: Value) -> Result<bool, String> {
        rule(r).matches(&input, &json!({}))
    }

    #[test]
    fn parses_the_three_operators() {
        let r = rule(
            json!({"Variable": "$.guard.Payload.proceed", "BooleanEquals": true, "Next": "Route"}),
        );
        assert_eq!(r.op, Op::BooleanEquals(true));
        assert_eq!(r.next, "Route");
        assert_eq!(r.variable.text, "$.guard.Payload.proceed");
        let r = rule(
            json!({"Variable": "$.a", "StringEquals": "item", "Next": "Item", "Comment": "c"}),
        );
        assert_eq!(r.op, Op::StringEquals("item".into()));
        let r = rule(json!({"Variable": "$.a", "IsPresent": false, "Next": "X"}));
        assert_eq!(r.op, Op::IsPresent(false));
    }

    #[test]
    fn evaluates_like_step_functions() {
        let input = json!({"s": "ranking", "b": false, "n": 1, "z": null, "o": {"error": {}}});
        let yes = |r: Value| check(r, input.clone()).unwrap();
        assert!(yes(
            json!({"Variable": "$.s", "StringEquals": "ranking", "Next": "X"})
        ));
        assert!(!yes(
            json!({"Variable": "$.s", "StringEquals": "item", "Next": "X"})
        ));
        assert!(yes(
            json!({"Variable": "$.b", "BooleanEquals": false, "Next": "X"})
        ));
        assert!(!yes(
            json!({"Variable": "$.b", "BooleanEquals": true, "Next": "X"})
        ));
        // Another type is no match, not an error.
        assert!(!yes(
            json!({"Variable": "$.n", "StringEquals": "1", "Next": "X"})
        ));
        assert!(!yes(
            json!({"Variable": "$.s", "BooleanEquals": true, "Next": "X"})
        ));
        assert!(!yes(
            json!({"Variable": "$.z", "BooleanEquals": false, "Next": "X"})
        ));
        // IsPresent: a present null is present.
        assert!(yes(
            json!({"Variable": "$.o.error", "IsPresent": true, "Next": "X"})
        ));
        assert!(yes(
            json!({"Variable": "$.z", "IsPresent": true, "Next": "X"})
        ));
        assert!(!yes(
            json!({"Variable": "$.o.nope", "IsPresent": true, "Next": "X"})
        ));
        assert!(yes(
            json!({"Variable": "$.o.nope", "IsPresent": false, "Next": "X"})
        ));
        // A missing variable is an error for the comparisons.
        let e = check(
            json!({"Variable": "$.nope", "StringEquals": "x", "Next": "X"}),
            input.clone(),
        )
        .unwrap_err();
        assert!(e.starts_with("Invalid path '$.nope'"), "{e}");
        assert!(check(
            json!({"Variable": "$.nope", "BooleanEquals": true, "Next": "X"}),
            input
        )
        .is_err());
    }

    #[test]
    fn refuses_unsupported_and_malformed_rules() {
        let err = |v: Value| Rule::parse(&v).unwrap_err();
        for op in [
            "NumericEquals",
            "StringMatches",
            "IsNull",
            "TimestampLessThan",
            "StringEqualsPath",
        ] {
            let e = err(json!({"Variable": "$.a", op: 1, "Next": "X"}));
            assert_eq!(
                e,
                format!(
                    "unsupported choice rule field \"{op}\" (supported operators: {OPERATORS})"
                )
            );
        }
        for combinator in ["And", "Or", "Not"] {
            let e = err(json!({combinator: [], "Next": "X"}));
            assert!(e.contains(&format!("\"{combinator}\"")), "{e}");
        }
        assert!(
            err(json!({"Variable": "$.a", "StringEquals": 1, "Next": "X"})).contains("wrong type")
        );
        assert!(
            err(json!({"Variable": "$.a", "BooleanEquals": "true", "Next": "X"}))
                .contains("wrong type")
        );
        assert!(err(
            json!({"Variable": "$.a", "StringEquals": "x", "IsPresent": true, "Next": "X"})
        )
        .contains("more than one operator"));
        assert!(err(json!({"StringEquals": "x", "Next": "X"})).contains("\"Variable\""));
        assert!(err(json!({"Variable": "$.a", "Next": "X"})).contains("needs an operator"));
        assert!(err(json!({"Variable": "$.a", "IsPresent": true})).contains("\"Next\""));
        assert!(
            err(json!({"Variable": "$.a[*]", "IsPresent": true, "Next": "X"}))
                .contains("\"Variable\"")
        );
        assert!(err(json!("rule")).contains("must be an object"));
    }
}

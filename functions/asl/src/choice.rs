//! Choice rules.

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use crate::path::Path;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Test {
    Present,
    Null,
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Lit(Value),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Compare(Kind, Cmp, Operand),
    Matches(String),
    Test(Test, bool),
}

#[derive(Debug, Clone)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Cmp { variable: Path, op: Op },
}

fn operator(name: &str) -> Option<(Kind, Cmp, bool)> {
    let (kind, rest) = if let Some(r) = name.strip_prefix("String") {
        (Kind::String, r)
    } else if let Some(r) = name.strip_prefix("Numeric") {
        (Kind::Numeric, r)
    } else if let Some(r) = name.strip_prefix("Boolean") {
        (Kind::Boolean, r)
    } else if let Some(r) = name.strip_prefix("Timestamp") {
        (Kind::Timestamp, r)
    } else {
        return None;
    };
    let (rest, is_path) = match rest.strip_suffix("Path") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let cmp = match rest {
        "Equals" => Cmp::Eq,
        "LessThan" => Cmp::Lt,
        "GreaterThan" => Cmp::Gt,
        "LessThanEquals" => Cmp::Le,
        "GreaterThanEquals" => Cmp::Ge,
        _ => return None,
    };
    if kind == Kind::Boolean && cmp != Cmp::Eq {
        return None;
    }
    Some((kind, cmp, is_path))
}

fn test(name: &str) -> Option<Test> {
    Some(match name {
        "IsPresent" => Test::Present,
        "IsNull" => Test::Null,
        "IsString" => Test::String,
        "IsNumeric" => Test::Numeric,
        "IsBoolean" => Test::Boolean,
        "IsTimestamp" => Test::Timestamp,
        _ => return None,
    })
}

fn parse_ts(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

impl Rule {
    /// Parses a rule object. `top` rules carry `Next` (returned); nested ones must not.
    pub fn parse(v: &Value, top: bool, at: &str) -> Result<(Rule, Option<String>), String> {
        let Value::Object(map) = v else {
            return Err(format!("{at}: a choice rule must be an object"));
        };
        let next = match map.get("Next") {
            Some(_) if !top => {
                return Err(format!(
                    "{at}: unsupported field \"Next\" in a nested choice rule"
                ))
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(format!("{at}: field \"Next\" must be a string")),
            None if top => return Err(format!("{at}: a choice rule needs \"Next\"")),
            None => None,
        };
        let mut rule = None;
        let mut set = |r: Rule, field: &str| -> Result<(), String> {
            if rule.is_some() {
                return Err(format!("{at}: more than one operator (\"{field}\")"));
            }
            rule = Some(r);
            Ok(())
        };
        let mut variable = None;
        for (k, val) in map {
            match k.as_str() {
                "Next" | "Comment" => {}
                "Variable" => {
                    let Value::String(s) = val else {
                        return Err(format!("{at}: \"Variable\" must be a string"));
                    };
                    variable =
                        Some(Path::parse(s).map_err(|e| format!("{at}: \"Variable\": {e}"))?);
                }
                "And" | "Or" => {
                    let Value::Array(items) = val else {
                        return Err(format!("{at}: \"{k}\" must be a non-empty array"));
                    };
                    if items.is_empty() {
                        return Err(format!("{at}: \"{k}\" must be a non-empty array"));
                    }
                    let mut rules = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        rules.push(Rule::parse(item, false, &format!("{at}.{k}[{i}]"))?.0);
                    }
                    set(
                        if k == "And" {
                            Rule::And(rules)
                        } else {
                            Rule::Or(rules)
                        },
                        k,
                    )?;
                }
                "Not" => {
                    let (r, _) = Rule::parse(val, false, &format!("{at}.Not"))?;
                    set(Rule::Not(Box::new(r)), k)?;
                }
                name => {
                    let placeholder = Path {
                        context: false,
                        segments: vec![],
                        text: "$".into(),
                    };
                    let op = if let Some((kind, cmp, is_path)) = operator(name) {
                        let operand = if is_path {
                            let Value::String(s) = val else {
                                return Err(format!("{at}: \"{name}\" must be a path string"));
                            };
                            Operand::Path(
                                Path::parse(s).map_err(|e| format!("{at}: \"{name}\": {e}"))?,
                            )
                        } else {
                            let ok = match kind {
                                Kind::String => val.is_string(),
                                Kind::Numeric => val.is_number(),
                                Kind::Boolean => val.is_boolean(),
                                Kind::Timestamp => val.as_str().and_then(parse_ts).is_some(),
                            };
                            if !ok {
                                return Err(format!(
                                    "{at}: \"{name}\" has a value of the wrong type: {val}"
                                ));
                            }
                            Operand::Lit(val.clone())
                        };
                        Op::Compare(kind, cmp, operand)
                    } else if name == "StringMatches" {
                        let Value::String(s) = val else {
                            return Err(format!("{at}: \"StringMatches\" must be a string"));
                        };
                        Op::Matches(s.clone())
                    } else if let Some(t) = test(name) {
                        let Value::Bool(b) = val else {
                            return Err(format!("{at}: \"{name}\" must be true or false"));
                        };
                        Op::Test(t, *b)
                    } else {
                        return Err(format!("{at}: unsupported field \"{name}\""));
                    };
                    set(
                        Rule::Cmp {
                            variable: placeholder,
                            op,
                        },
                        name,
                    )?;
                }
            }
        }
        let rule = match (rule, variable) {
            (None, _) => return Err(format!("{at}: a choice rule needs an operator")),
            (Some(Rule::Cmp { op, .. }), Some(v)) => Rule::Cmp { variable: v, op },
            (Some(Rule::Cmp { .. }), None) => {
                return Err(format!("{at}: a comparison needs \"Variable\""))
            }
            (Some(_), Some(_)) => {
                return Err(format!("{at}: \"Variable\" is not allowed with And/Or/Not"))
            }
            (Some(r), None) => r,
        };
        Ok((rule, next))
    }

    pub fn eval(&self, input: &Value, ctx: &Value) -> Result<bool, String> {
        match self {
            Rule::And(rules) => {
                for r in rules {
                    if !r.eval(input, ctx)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rules) => {
                for r in rules {
                    if r.eval(input, ctx)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(r) => Ok(!r.eval(input, ctx)?),
            Rule::Cmp { variable, op } => {
                let value = variable.get(input, ctx);
                if let Op::Test(Test::Present, want) = op {
                    return Ok(value.is_some() == *want);
                }
                let Some(value) = value else {
                    return Err(format!(
                        "Invalid path '{}': The choice state's condition path references an invalid value.",
                        variable.text
                    ));
                };
                match op {
                    Op::Test(t, want) => {
                        let is = match t {
                            Test::Present => true,
                            Test::Null => value.is_null(),
                            Test::String => value.is_string(),
                            Test::Numeric => value.is_number(),
                            Test::Boolean => value.is_boolean(),
                            Test::Timestamp => value.as_str().and_then(parse_ts).is_some(),
                        };
                        Ok(is == *want)
                    }
                    Op::Matches(pattern) => {
                        Ok(value.as_str().is_some_and(|s| wildcard_match(pattern, s)))
                    }
                    Op::Compare(kind, cmp, operand) => {
                        let other = match operand {
                            Operand::Lit(v) => v,
                            Operand::Path(p) => p.get(input, ctx).ok_or_else(|| {
                                format!(
                                    "Invalid path '{}': The choice state's condition path references an invalid value.",
                                    p.text
                                )
                            })?,
                        };
                        Ok(compare(*kind, *cmp, value, other))
                    }
                }
            }
        }
    }
}

fn compare(kind: Kind, cmp: Cmp, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match kind {
        Kind::String => match (a.as_str(), b.as_str()) {
            (Some(a), Some(b)) => Some(a.cmp(b)),
            _ => None,
        },
        Kind::Numeric => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b),
            _ => None,
        },
        Kind::Boolean => match (a.as_bool(), b.as_bool()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => None,
        },
        Kind::Timestamp => match (a.as_str().and_then(parse_ts), b.as_str().and_then(parse_ts)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => None,
        },
    };
    let Some(ord) = ord else { return false };
    match cmp {
        Cmp::Eq => ord == Ordering::Equal,
        Cmp::Lt => ord == Ordering::Less,
        Cmp::Gt => ord == Ordering::Greater,
        Cmp::Le => ord != Ordering::Greater,
        Cmp::Ge => ord != Ordering::Less,
    }
}

/// `*` matches any run of characters; `\*` and `\\` are literal.
fn wildcard_match(pattern: &str, s: &str) -> bool {
    #[derive(PartialEq)]
    enum Tok {
        Star,
        Ch(char),
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                if let Some(n) = it.next() {
                    toks.push(Tok::Ch(n));
                }
            }
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Ch(c)),
        }
    }
    let s: Vec<char> = s.chars().collect();
    // Classic iterative wildcard matching with backtracking to the last star.
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < toks.len() && toks[p] == Tok::Ch(s[i]) {
            p += 1;
            i += 1;
        } else if p < toks.len() && toks[p] == Tok::Star {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    while p < toks.len() && toks[p] == Tok::Star {
        p += 1;
    }
    p == toks.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(rule: Value, input: Value) -> Result<bool, String> {
        let (r, _) = Rule::parse(&rule, false, "Choices[0]").unwrap();
        r.eval(&input, &json!({}))
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("log-*.txt", "log-2024.txt"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b", "aXXc"));
        assert!(wildcard_match("a\\*b", "a*b"));
        assert!(!wildcard_match("a\\*b", "aXb"));
    }

    #[test]
    fn operators() {
        let input = json!({"n": 5, "s": "abc", "b": true, "t": "2024-01-01T00:00:00Z", "z": null, "m": 5.0});
        assert!(check(
            json!({"Variable": "$.n", "NumericEquals": 5}),
            input.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.n", "NumericEqualsPath": "$.m"}),
            input.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.n", "NumericGreaterThanEquals": 5}),
            input.clone()
        )
        .unwrap());
        assert!(!check(
            json!({"Variable": "$.n", "NumericLessThan": 5}),
            input.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.s", "StringLessThan": "abd"}),
            input.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.s", "StringMatches": "a*"}),
            input.clone()
        )
        .unwrap());
        // type mismatch is just false
        assert!(!check(
            json!({"Variable": "$.s", "NumericEquals": 1}),
            input.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.b", "BooleanEquals": true}),
            input.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.t", "TimestampLessThan": "2024-01-01T00:00:01+00:00"}),
            input.clone()
        )
        .unwrap());
        assert!(check(json!({"Variable": "$.z", "IsNull": true}), input.clone()).unwrap());
        assert!(check(
            json!({"Variable": "$.nope", "IsPresent": false}),
            input.clone()
        )
        .unwrap());
        assert!(check(
            json!({"And": [{"Variable": "$.n", "IsNumeric": true}, {"Not": {"Variable": "$.s", "IsBoolean": true}}]}),
            input.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Or": [{"Variable": "$.n", "IsString": true}, {"Variable": "$.s", "IsString": true}]}),
            input.clone()
        )
        .unwrap());
        // a missing variable is an error (States.Runtime), except for IsPresent
        assert!(check(
            json!({"Variable": "$.nope", "StringEquals": "x"}),
            input.clone()
        )
        .is_err());
        assert!(check(json!({"Variable": "$.nope", "IsNull": true}), input).is_err());
    }

    #[test]
    fn rejects_bad_rules() {
        for rule in [
            json!({"Variable": "$.a", "StringEquals": 1}),
            json!({"Variable": "$.a", "BooleanLessThan": true}),
            json!({"Variable": "$.a", "StringEquals": "x", "NumericEquals": 1}),
            json!({"StringEquals": "x"}),
            json!({"Variable": "$.a"}),
            json!({"Variable": "$.a", "Condition": "x"}),
            json!({"And": []}),
        ] {
            assert!(Rule::parse(&rule, false, "r").is_err(), "{rule}");
        }
        assert!(Rule::parse(
            &json!({"Variable": "$.a", "IsNull": true, "Next": "X"}),
            false,
            "r"
        )
        .is_err());
        assert!(Rule::parse(&json!({"Variable": "$.a", "IsNull": true}), true, "r").is_err());
    }
}

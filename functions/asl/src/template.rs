//! Payload templates (Parameters, ResultSelector), their `.$` value expressions
//! (paths and the supported intrinsic functions).

use serde_json::{Map, Number, Value};

use crate::path::{kind, Path};

/// A value expression: a path or an intrinsic function call.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Path(Path),
    Call(Call),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    MathAdd,
    Uuid,
}

const FUNCS: &[(&str, Func)] = &[
    ("States.Format", Func::Format),
    ("States.StringToJson", Func::StringToJson),
    ("States.JsonToString", Func::JsonToString),
    ("States.Array", Func::Array),
    ("States.MathAdd", Func::MathAdd),
    ("States.UUID", Func::Uuid),
];

#[derive(Debug, Clone)]
pub(crate) struct Call {
    func: Func,
    name: &'static str,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Arg {
    Str(String),
    Lit(Value),
    Path(Path),
    Call(Call),
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, String> {
        if text.starts_with('$') {
            return Path::parse(text).map(Expr::Path);
        }
        if text.starts_with("States.") {
            let mut p = Parser {
                chars: text.chars().collect(),
                pos: 0,
                text,
            };
            let call = p.call()?;
            p.skip_ws();
            if p.pos != p.chars.len() {
                return Err(format!(
                    "intrinsic {text:?}: unexpected text after the call"
                ));
            }
            return Ok(Expr::Call(call));
        }
        Err(format!(
            "{text:?} is neither a path ('$…', '$$…') nor an intrinsic function ('States.…')"
        ))
    }

    pub fn eval(&self, input: &Value, ctx: &Value) -> Result<Value, String> {
        match self {
            Expr::Path(p) => p
                .get(input, ctx)
                .cloned()
                .ok_or_else(|| format!("Invalid path '{}': no results for the path", p.text)),
            Expr::Call(c) => c.eval(input, ctx),
        }
    }
}

struct Parser<'t> {
    chars: Vec<char>,
    pos: usize,
    text: &'t str,
}

impl Parser<'_> {
    fn err(&self, msg: &str) -> String {
        format!("intrinsic {:?}: {msg} at offset {}", self.text, self.pos)
    }

    fn skip_ws(&mut self) {
        while self.pos < self.chars.len() && self.chars[self.pos].is_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn call(&mut self) -> Result<Call, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '.' {
                self.pos += 1;
            } else {
                break;
            }
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        let Some((fname, func)) = FUNCS.iter().find(|(n, _)| *n == name) else {
            return Err(format!(
                "intrinsic function {name} is not supported (supported: {})",
                FUNCS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ));
        };
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(self.err("expected '('"));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                args.push(self.arg()?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.err("expected ',' or ')'")),
                }
            }
        }
        let arity_ok = match func {
            Func::Format => !args.is_empty(),
            Func::StringToJson | Func::JsonToString => args.len() == 1,
            Func::Array => true,
            Func::MathAdd => args.len() == 2,
            Func::Uuid => args.is_empty(),
        };
        if !arity_ok {
            return Err(format!(
                "intrinsic {:?}: wrong number of arguments for {fname}",
                self.text
            ));
        }
        Ok(Call {
            func: *func,
            name: fname,
            args,
        })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        match self.peek() {
            Some('\'') => {
                self.pos += 1;
                let mut s = String::new();
                loop {
                    match self.peek() {
                        None => return Err(self.err("unterminated string")),
                        Some('\'') => {
                            self.pos += 1;
                            break;
                        }
                        Some('\\') => {
                            // Keep escapes of braces for States.Format; unescape quotes and backslashes.
                            self.pos += 1;
                            match self.peek() {
                                Some(c @ ('{' | '}')) => {
                                    s.push('\\');
                                    s.push(c);
                                }
                                Some(c) => s.push(c),
                                None => return Err(self.err("unterminated escape")),
                            }
                            self.pos += 1;
                        }
                        Some(c) => {
                            s.push(c);
                            self.pos += 1;
                        }
                    }
                }
                Ok(Arg::Str(s))
            }
            Some('$') => {
                let start = self.pos;
                let mut quote: Option<char> = None;
                while let Some(c) = self.peek() {
                    match quote {
                        Some(q) if c == q => quote = None,
                        Some(_) => {}
                        None if c == '\'' || c == '"' => quote = Some(c),
                        None if c == ',' || c == ')' || c.is_whitespace() => break,
                        None => {}
                    }
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                Ok(Arg::Path(Path::parse(&text)?))
            }
            Some('S') => Ok(Arg::Call(self.call()?)),
            Some(_) => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c == ',' || c == ')' || c.is_whitespace() {
                        break;
                    }
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                match serde_json::from_str::<Value>(&text) {
                    Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Ok(Arg::Lit(v)),
                    _ => Err(self.err(&format!("unsupported argument {text:?}"))),
                }
            }
            None => Err(self.err("unexpected end")),
        }
    }
}

impl Call {
    fn eval(&self, input: &Value, ctx: &Value) -> Result<Value, String> {
        let mut vals = Vec::with_capacity(self.args.len());
        for a in &self.args {
            vals.push(match a {
                Arg::Str(s) if self.func == Func::Format && vals.is_empty() => {
                    Value::String(s.clone())
                }
                Arg::Str(s) => Value::String(unescape_braces(s)),
                Arg::Lit(v) => v.clone(),
                Arg::Path(p) => p.get(input, ctx).cloned().ok_or_else(|| {
                    format!(
                        "Invalid path '{}' in {}: no results for the path",
                        p.text, self.name
                    )
                })?,
                Arg::Call(c) => c.eval(input, ctx)?,
            });
        }
        let name = self.name;
        match self.func {
            Func::Format => {
                let template = match &vals[0] {
                    Value::String(s) => s.clone(),
                    other => return Err(format!("{name}: the template is {}", kind(other))),
                };
                format(&template, &vals[1..]).map_err(|e| format!("{name}: {e}"))
            }
            Func::StringToJson => match &vals[0] {
                Value::String(s) => serde_json::from_str(s)
                    .map_err(|e| format!("{name}: the argument is not valid JSON: {e}")),
                other => Err(format!("{name}: the argument is {}", kind(other))),
            },
            Func::JsonToString => Ok(Value::String(vals[0].to_string())),
            Func::Array => Ok(Value::Array(vals)),
            Func::MathAdd => {
                let a = as_int(&vals[0])
                    .ok_or_else(|| format!("{name}: arguments must be integers"))?;
                let b = as_int(&vals[1])
                    .ok_or_else(|| format!("{name}: arguments must be integers"))?;
                a.checked_add(b)
                    .map(|n| Value::Number(Number::from(n)))
                    .ok_or_else(|| format!("{name}: overflow"))
            }
            Func::Uuid => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
        }
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        _ => None,
    }
}

fn unescape_braces(s: &str) -> String {
    s.replace("\\{", "{").replace("\\}", "}")
}

fn format(template: &str, args: &[Value]) -> Result<Value, String> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    let mut next = 0;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                let arg = args
                    .get(next)
                    .ok_or_else(|| "more placeholders than arguments".to_string())?;
                next += 1;
                match arg {
                    Value::String(s) => out.push_str(s),
                    other => out.push_str(&other.to_string()),
                }
            }
            c => out.push(c),
        }
    }
    if next != args.len() {
        return Err("more arguments than placeholders".into());
    }
    Ok(Value::String(out))
}

/// A compiled payload template.
#[derive(Debug, Clone)]
pub(crate) enum Template {
    Lit(Value),
    Obj(Vec<(String, Template)>),
    Arr(Vec<Template>),
    Expr(String, Expr),
}

impl Template {
    pub fn compile(v: &Value) -> Result<Template, String> {
        Ok(match v {
            Value::Object(map) => {
                let mut fields = Vec::with_capacity(map.len());
                for (k, v) in map {
                    if let Some(key) = k.strip_suffix(".$") {
                        let Value::String(expr) = v else {
                            return Err(format!(
                                "field {k:?} must be a string path or intrinsic function"
                            ));
                        };
                        if map.contains_key(key) {
                            return Err(format!("fields {key:?} and {k:?} collide"));
                        }
                        let e = Expr::parse(expr).map_err(|e| format!("field {k:?}: {e}"))?;
                        fields.push((key.to_string(), Template::Expr(k.clone(), e)));
                    } else {
                        fields.push((k.clone(), Template::compile(v)?));
                    }
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
            Template::Expr(key, e) => e.eval(input, ctx).map_err(|m| {
                format!("The value for the field '{key}' could not be computed: {m}")
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(expr: &str, input: Value) -> Result<Value, String> {
        Expr::parse(expr)?.eval(&input, &json!({"State": {"Name": "S"}}))
    }

    #[test]
    fn intrinsics() {
        assert_eq!(
            ev(
                "States.Format('Hello, {} ({})', $.name, $.n)",
                json!({"name": "Ann", "n": 3})
            )
            .unwrap(),
            json!("Hello, Ann (3)")
        );
        assert_eq!(
            ev("States.Format('a \\{\\} {}', $$.State.Name)", json!({})).unwrap(),
            json!("a {} S")
        );
        assert_eq!(
            ev("States.StringToJson($.s)", json!({"s": "{\"a\":[1]}"})).unwrap(),
            json!({"a": [1]})
        );
        assert_eq!(
            ev("States.JsonToString($.o)", json!({"o": {"a": 1}})).unwrap(),
            json!("{\"a\":1}")
        );
        assert_eq!(
            ev(
                "States.Array('x', 1, true, null, $.a, States.MathAdd($.a, -1))",
                json!({"a": 5})
            )
            .unwrap(),
            json!(["x", 1, true, null, 5, 4])
        );
        assert_eq!(
            ev("States.UUID()", json!({}))
                .unwrap()
                .as_str()
                .unwrap()
                .len(),
            36
        );
        assert!(ev("States.Format('{}')", json!({})).is_err());
        assert!(ev("States.MathAdd($.s, 1)", json!({"s": "x"})).is_err());
        assert!(ev("States.StringToJson($.missing)", json!({})).is_err());
    }

    #[test]
    fn rejects_unsupported_intrinsics() {
        let e = Expr::parse("States.Hash($.a, 'SHA-256')").unwrap_err();
        assert!(e.contains("States.Hash is not supported"), "{e}");
        assert!(Expr::parse("States.MathAdd(1)").is_err());
        assert!(Expr::parse("States.UUID() extra").is_err());
        assert!(Expr::parse("plain").is_err());
    }
}

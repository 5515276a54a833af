//! `DefinitionSubstitutions`: `${Name}` placeholders in the definition text.

use std::collections::{BTreeSet, HashMap};

/// A placeholder was left without a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unresolved definition substitution(s): {}", .names.iter().map(|n| format!("${{{n}}}")).collect::<Vec<_>>().join(", "))]
pub struct SubstitutionError {
    /// The unresolved names, sorted and de-duplicated.
    pub names: Vec<String>,
}

/// Replaces every `${Name}` in `text` with `values[Name]`, as CloudFormation /
/// SAM `DefinitionSubstitutions` do (plain text replacement; `${!Name}` is written
/// as a literal `${Name}`). Any `${…}` without a value is an error naming them all.
pub fn substitute(
    text: &str,
    values: &HashMap<String, String>,
) -> Result<String, SubstitutionError> {
    let mut out = String::with_capacity(text.len());
    let mut missing = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            missing.insert(after.chars().take(40).collect::<String>());
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str("${");
            out.push_str(literal);
            out.push('}');
        } else if let Some(v) = values.get(name) {
            out.push_str(v);
        } else {
            missing.insert(name.to_string());
            out.push_str(&rest[start..start + 2 + end + 1]);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(SubstitutionError {
            names: missing.into_iter().collect(),
        })
    }
}

//! Checks responses against the committed `openapi.json`: the operation must document the status, the content
//! type and the headers it answered with, and a JSON body must validate against the documented schema.
//!
//! The validator is our own, for the subset of JSON Schema the document uses (`$ref` to `#/components/schemas`,
//! `type` (also as a list), `enum`, `const`, `properties`, `required`, `additionalProperties`, `propertyNames`,
//! `items`, `oneOf`, `anyOf`, `allOf`, `minimum`, `exclusiveMinimum`, `maximum`, `nullable`). A keyword it does not know makes the
//! check fail rather than pass silently, so the document cannot outgrow the validator unnoticed.
//!
//! Used by the test crates of `runbox-server` and `runbox` (through [`crate::app`], [`crate::live`] and their own
//! clients).

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

/// A template's last segment that takes the rest of the path, several segments if need be: a session's file path
/// (the router's `{*path}`; the document's pattern for it allows `/`).
const SPANNING_PARAMETER: &str = "{path}";

/// Keywords that describe without constraining.
const ANNOTATIONS: &[&str] = &[
    "description",
    "format",
    "example",
    "examples",
    "title",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentMediaType",
    "contentEncoding",
    "discriminator",
];

pub struct Document {
    doc: Value,
}

/// The committed document (repository root), parsed once per test binary.
pub fn committed() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(|| {
        // This crate lives at crates/runbox-testkit, two levels under the repository root.
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Document {
            doc: serde_json::from_str(&text).expect("openapi.json is JSON"),
        }
    })
}

/// The media type without parameters, lower-cased: `text/plain; charset=utf-8` → `text/plain`.
pub fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether a documented media type or range (`*/*`, `text/*`) covers `actual`.
fn media_range_matches(documented: &str, actual: &str) -> bool {
    match documented.split_once('/') {
        Some(("*", "*")) => true,
        Some((kind, "*")) => actual.split_once('/').is_some_and(|(k, _)| k == kind),
        _ => documented == actual,
    }
}

impl Document {
    /// The operation serving `method path` (a concrete path, query allowed), with its path template. A trailing
    /// `{path}` matches one segment or more ([`SPANNING_PARAMETER`]); any other parameter, exactly one.
    pub fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let path = path.split('?').next().unwrap_or(path);
        let method = method.to_ascii_lowercase();
        let paths = self.doc["paths"].as_object()?;
        // An exact path wins over a template.
        if let Some(op) = paths.get(path).and_then(|item| item.get(&method)) {
            let (template, _) = paths.get_key_value(path)?;
            return Some((template.as_str(), op));
        }
        let segments: Vec<&str> = path.split('/').collect();
        let fits = |t: &str, s: &str| (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s;
        paths.iter().find_map(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            let matches = if parts.last() == Some(&SPANNING_PARAMETER) {
                // `{path}` takes the rest, one segment or more: `files/a/b.txt` is a file path of two levels.
                let head = parts.len() - 1;
                segments.len() >= parts.len()
                    && parts[..head].iter().zip(&segments).all(|(t, s)| fits(t, s))
                    && !segments[head..].concat().is_empty()
            } else {
                parts.len() == segments.len() && parts.iter().zip(&segments).all(|(t, s)| fits(t, s))
            };
            if matches {
                item.get(&method).map(|op| (template.as_str(), op))
            } else {
                None
            }
        })
    }

    /// A named schema of the components.
    pub fn schema(&self, name: &str) -> &Value {
        let s = &self.doc["components"]["schemas"][name];
        assert!(!s.is_null(), "openapi.json has no schema {name}");
        s
    }

    /// Checks one response of `method path`. Statuses of no documented operation (an unknown route's 404, a
    /// wrong method's 405) must carry the error body.
    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), String> {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let content_type = header("content-type").map(essence);
        let what = format!("{method} {path} → {status}");
        let Some((template, op)) = self.operation(method, path) else {
            if matches!(status, 404 | 405) {
                let value: Value =
                    serde_json::from_slice(body).map_err(|e| format!("{what}: body is not JSON: {e}"))?;
                return self
                    .validate_named("ErrorBody", &value)
                    .map_err(|e| format!("{what}: {e}"));
            }
            return Err(format!("{what}: no operation in openapi.json serves this route"));
        };
        let responses = &op["responses"];
        let response = responses
            .get(status.to_string())
            .or_else(|| responses.get(format!("{}XX", status / 100)))
            .or_else(|| responses.get("default"))
            .ok_or_else(|| {
                let documented: Vec<&String> = responses.as_object().map(|o| o.keys().collect()).unwrap_or_default();
                format!(
                    "{what}: status {status} is not documented for {method} {template} (documented: {documented:?})"
                )
            })?;
        if let Some(documented) = response["headers"].as_object() {
            for name in documented.keys() {
                if header(name).is_none() {
                    return Err(format!("{what}: documented header {name} is missing"));
                }
            }
        }
        let Some(content) = response["content"].as_object().filter(|c| !c.is_empty()) else {
            return Ok(());
        };
        let content_type = content_type.ok_or_else(|| format!("{what}: no Content-Type"))?;
        let media = content
            .iter()
            .find(|(k, _)| media_range_matches(&essence(k), &content_type))
            .map(|(_, v)| v)
            .ok_or_else(|| {
                format!(
                    "{what}: Content-Type {content_type} is not documented ({:?})",
                    content.keys().collect::<Vec<_>>()
                )
            })?;
        if content_type == "application/json" || content_type.ends_with("+json") {
            let value: Value = serde_json::from_slice(body).map_err(|e| format!("{what}: body is not JSON: {e}"))?;
            if let Some(schema) = media.get("schema") {
                self.validate(schema, &value).map_err(|e| format!("{what}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Validates `value` against the named component schema.
    pub fn validate_named(&self, name: &str, value: &Value) -> Result<(), String> {
        self.validate(self.schema(name), value)
            .map_err(|e| format!("{e}\n  value: {value}"))
    }

    /// Validates `value` against `schema`; the error names the first failing place (`$.result.status`).
    pub fn validate(&self, schema: &Value, value: &Value) -> Result<(), String> {
        let mut errors = Vec::new();
        self.check(schema, value, "$", &mut errors);
        match errors.first() {
            None => Ok(()),
            Some(_) => Err(errors.join("; ")),
        }
    }

    fn resolve<'a>(&'a self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        self.doc.pointer(pointer)
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => return errors.push(format!("{at}: no value is allowed here")),
            Value::Object(o) => o,
            other => return errors.push(format!("{at}: schema is not an object: {other}")),
        };
        for (keyword, arg) in schema {
            let before = errors.len();
            match keyword.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "$ref" => match arg.as_str().and_then(|r| self.resolve(r)) {
                    Some(target) => self.check(target, value, at, errors),
                    None => errors.push(format!("{at}: unresolvable $ref {arg}")),
                },
                "type" => {
                    let nullable = schema.get("nullable").and_then(Value::as_bool).unwrap_or(false);
                    let allowed: Vec<&str> = match arg {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                        _ => vec![],
                    };
                    let ok = (nullable && value.is_null()) || allowed.iter().any(|t| has_type(value, t));
                    if !ok {
                        errors.push(format!("{at}: expected type {arg}, got {}", short(value)));
                    }
                }
                "nullable" => {}
                "enum" => {
                    if !arg.as_array().is_some_and(|options| options.contains(value)) {
                        errors.push(format!("{at}: {} is not one of {arg}", short(value)));
                    }
                }
                "const" => {
                    if arg != value {
                        errors.push(format!("{at}: {} is not {arg}", short(value)));
                    }
                }
                "properties" => {
                    if let (Some(props), Some(obj)) = (arg.as_object(), value.as_object()) {
                        for (name, sub) in props {
                            if let Some(v) = obj.get(name) {
                                self.check(sub, v, &format!("{at}.{name}"), errors);
                            }
                        }
                    }
                }
                "required" => {
                    if let (Some(names), Some(obj)) = (arg.as_array(), value.as_object()) {
                        for name in names.iter().filter_map(Value::as_str) {
                            if !obj.contains_key(name) {
                                errors.push(format!("{at}: required property {name} is missing"));
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(obj) = value.as_object() {
                        let known = schema.get("properties").and_then(Value::as_object);
                        for (name, v) in obj {
                            if !known.is_some_and(|k| k.contains_key(name)) {
                                self.check(arg, v, &format!("{at}.{name}"), errors);
                            }
                        }
                    }
                }
                "propertyNames" => {
                    if let Some(obj) = value.as_object() {
                        for name in obj.keys() {
                            self.check(arg, &Value::String(name.clone()), &format!("{at}[{name:?}]"), errors);
                        }
                    }
                }
                "items" => {
                    if let Some(items) = value.as_array() {
                        for (i, v) in items.iter().enumerate() {
                            self.check(arg, v, &format!("{at}[{i}]"), errors);
                        }
                    }
                }
                "oneOf" | "anyOf" => {
                    let options = arg.as_array().map(Vec::as_slice).unwrap_or_default();
                    let mut failures = Vec::new();
                    let passing = options
                        .iter()
                        .filter(|s| {
                            let mut e = Vec::new();
                            self.check(s, value, at, &mut e);
                            failures.extend(e.iter().cloned());
                            e.is_empty()
                        })
                        .count();
                    let ok = if keyword == "oneOf" { passing == 1 } else { passing >= 1 };
                    if !ok {
                        errors.push(format!(
                            "{at}: {passing} of the {keyword} options match ({})",
                            failures.join("; ")
                        ));
                    }
                }
                "allOf" => {
                    for s in arg.as_array().map(Vec::as_slice).unwrap_or_default() {
                        self.check(s, value, at, errors);
                    }
                }
                "minimum" => {
                    if let (Some(min), Some(v)) = (arg.as_f64(), value.as_f64()) {
                        if v < min {
                            errors.push(format!("{at}: {v} is below the minimum {min}"));
                        }
                    }
                }
                "exclusiveMinimum" => {
                    if let (Some(min), Some(v)) = (arg.as_f64(), value.as_f64()) {
                        if v <= min {
                            errors.push(format!("{at}: {v} is not above the exclusive minimum {min}"));
                        }
                    }
                }
                "maximum" => {
                    if let (Some(max), Some(v)) = (arg.as_f64(), value.as_f64()) {
                        if v > max {
                            errors.push(format!("{at}: {v} is above the maximum {max}"));
                        }
                    }
                }
                other => errors.push(format!(
                    "{at}: the test validator does not support the keyword {other:?}"
                )),
            }
            // One error per keyword is enough to say where things went wrong.
            errors.truncate(before + 1);
        }
    }
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

fn short(value: &Value) -> String {
    let s = value.to_string();
    if s.len() > 80 {
        format!(
            "{}…",
            &s[..s
                .char_indices()
                .take_while(|(i, _)| *i < 80)
                .last()
                .map_or(0, |(i, _)| i)]
        )
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(method: &str, path: &str) -> Option<String> {
        committed().operation(method, path).map(|(t, _)| t.to_string())
    }

    #[test]
    fn a_trailing_path_parameter_spans_segments_and_no_other_does() {
        let file = Some("/sessions/{id}/files/{path}".to_string());
        assert_eq!(template("GET", "/sessions/s/files/a.txt"), file);
        assert_eq!(template("PUT", "/sessions/s/files/a/b/c.txt"), file);
        assert_eq!(template("DELETE", "/sessions/s/files/a/../b?x=1"), file);
        assert_eq!(
            template("GET", "/sessions/s/files"),
            Some("/sessions/{id}/files".into())
        );
        assert_eq!(template("GET", "/sessions/s/files/"), None);
        assert_eq!(
            template("POST", "/sessions/s/execute"),
            Some("/sessions/{id}/execute".into())
        );
        // `{id}` is one segment: a longer path is no session route.
        assert_eq!(template("GET", "/sessions/s/t"), None);
        assert_eq!(template("GET", "/executions/e/f"), None);
    }
}

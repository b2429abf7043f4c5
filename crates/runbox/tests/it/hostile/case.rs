//! The corpus as data: one TOML file per family, each `[[case]]` a list of steps with their expected outcomes.
//! A case with no `[[case.step]]` is one step written inline (usually one program to execute). Unknown keys are
//! errors, so a misspelt expectation cannot pass silently.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

pub struct Family {
    pub name: String,
    pub cases: Vec<Case>,
}

#[derive(Deserialize)]
struct FamilyFile {
    family: String,
    #[allow(dead_code)]
    about: String,
    #[serde(rename = "case")]
    cases: Vec<toml::Table>,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub steps: Vec<Step>,
}

/// One request (or a small exchange) and what must come of it. Every field is optional; `do` says which request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// execute (default), stream, session, cell, async, wait (for a saved async id), put, get, list, delete, http,
    /// ws_flood, slow_bodies.
    #[serde(rename = "do")]
    pub action: Option<String>,
    /// Which API key: "a" (default), "b", "none", "wrong".
    pub key: Option<String>,
    pub language: Option<String>,
    pub code: Option<String>,
    pub stdin: Option<String>,
    pub files: Option<Value>,
    pub env: Option<BTreeMap<String, String>>,
    pub args: Option<Value>,
    pub limits: Option<Value>,
    pub timeout_ms: Option<Value>,
    /// More fields merged into the JSON body as they are.
    pub extra: Option<Value>,
    /// The variable naming the session (`cell`, `put`, `get`, ...) or saving an id (`session`, `async`).
    pub session: Option<String>,
    pub save: Option<String>,
    /// File path for put/get/list/delete (sent as written: `%2e%2e` stays encoded); full path for `http`.
    pub path: Option<String>,
    /// Body of `put`; body of `http` (also `body_hex`, or `body_gen`: `nested:N`, `huge:N`, `array:N`).
    pub body: Option<String>,
    pub body_hex: Option<String>,
    pub body_gen: Option<String>,
    pub method: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    /// ws_flood: how many messages, each `message` (JSON text); slow_bodies: how many connections.
    pub count: Option<usize>,
    pub message: Option<String>,
    /// Runs the step this many times (each time checked).
    pub repeat: Option<usize>,
    /// async: do not wait for the job to finish.
    pub no_wait: Option<bool>,
    /// Expected HTTP statuses (default: < 400 for runs and sessions, anything but 5xx for raw requests).
    pub http: Option<Vec<u16>>,
    /// Expected execution or cell statuses.
    pub status: Option<Vec<String>>,
    /// Strings that must appear in stdout (or the body when there is no stdout).
    pub has: Option<Vec<String>>,
    /// Strings that must not appear anywhere in the response body.
    pub lacks: Option<Vec<String>>,
    /// Expected error `code` of the body.
    pub error: Option<Vec<String>>,
}

fn check_keys(table: &toml::Table, where_: &str) -> Result<(), String> {
    // Every other key belongs to the inline step, whose `deny_unknown_fields` rejects a misspelt one.
    if !table.contains_key("name") || !table.contains_key("about") {
        return Err(format!("{where_}: every case has a `name` and an `about`"));
    }
    Ok(())
}

fn parse_case(mut table: toml::Table, family: &str) -> Result<Case, String> {
    let where_ = format!("{family}/{}", table.get("name").and_then(|v| v.as_str()).unwrap_or("?"));
    check_keys(&table, &where_)?;
    let name = table
        .remove("name")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    table.remove("about");
    let listed = table.remove("step");
    let mut steps = Vec::new();
    if !table.is_empty() {
        let inline: Step = toml::Value::Table(table)
            .try_into()
            .map_err(|e| format!("{where_}: {e}"))?;
        steps.push(inline);
    }
    if let Some(list) = listed {
        let list: Vec<Step> = list.try_into().map_err(|e| format!("{where_}: step: {e}"))?;
        steps.extend(list);
    }
    if steps.is_empty() {
        return Err(format!("{where_}: no step"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("{where_}: names are letters, digits and _"));
    }
    Ok(Case { name, steps })
}

/// Every `*.toml` of `dir`, sorted by file name; names are unique across the corpus.
pub fn load_all(dir: &Path) -> Result<Vec<Family>, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut families = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let file: FamilyFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut cases = Vec::new();
        for table in file.cases {
            let case = parse_case(table, &file.family)?;
            if !seen.insert(case.name.clone()) {
                return Err(format!("{}: case {} is named twice", path.display(), case.name));
            }
            cases.push(case);
        }
        families.push(Family {
            name: file.family,
            cases,
        });
    }
    Ok(families)
}

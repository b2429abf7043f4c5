//! argv templates: the `{placeholders}` a language file may use, and their
//! expansion for one submission.
//!
//! Exists because the catalogue is data: a language file cannot compute the
//! command line, so it names a few well-defined values (the entry file, all
//! sources, the Java class name, the user's arguments) that the engine fills
//! in. A placeholder is always a whole argv element, so expansion never splices
//! user-controlled text into a larger string.

use std::fmt;

use crate::ARTEFACT_DIR;

/// The files and arguments of one submission, as the engine sees them.
///
/// Paths are relative to the sandbox's working directory (`/workspace`),
/// use `/`, and have no `.` or `..` components (`main.py`, `src/app.ts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The file to run (or the crate root, class, module... to build).
    pub entry: String,
    /// Every file the user sent, the entry included.
    pub files: Vec<String>,
    /// The user's command-line arguments.
    pub args: Vec<String>,
}

/// A value an argv element may stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{source}`: the entry file's path (`src/app.py`).
    Source,
    /// `{sources}`: every user file whose extension is one of the language's,
    /// plus the entry, sorted; one argv element each.
    Sources,
    /// `{entry_stem}`: the entry's file name without directory and extension
    /// (`src/Main.java` gives `Main`).
    EntryStem,
    /// `{entry_js}`: where a compile-to-JavaScript stage that mirrors the tree
    /// into the artefact directory puts the entry
    /// (`src/app.ts` gives `/workspace/.runbox/src/app.js`).
    EntryJs,
    /// `{args}`: the user's arguments, one argv element each; only as the last
    /// element of `run.argv`.
    Args,
}

impl Placeholder {
    /// Every placeholder, in documentation order.
    pub const ALL: [Placeholder; 5] = [
        Placeholder::Source,
        Placeholder::Sources,
        Placeholder::EntryStem,
        Placeholder::EntryJs,
        Placeholder::Args,
    ];

    /// The name between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Source => "source",
            Placeholder::Sources => "sources",
            Placeholder::EntryStem => "entry_stem",
            Placeholder::EntryJs => "entry_js",
            Placeholder::Args => "args",
        }
    }

    fn from_name(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.name())
    }
}

/// One argv element after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    Literal(String),
    Placeholder(Placeholder),
}

/// Classifies one argv element. `Err` carries the message for a bad element;
/// the caller adds file and field.
///
/// - exactly `{name}` with a known name: that placeholder;
/// - exactly `{name}` with an unknown name: error (almost certainly a typo);
/// - a known `{name}` inside a longer element: error (must be whole);
/// - anything else, other braces included (`${HOME}`, `{print $1}`): literal.
pub(crate) fn parse_arg(element: &str) -> Result<Arg, String> {
    if let Some(name) = element.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        if is_placeholder_name(name) {
            return Placeholder::from_name(name)
                .map(Arg::Placeholder)
                .ok_or_else(|| format!("unknown placeholder {{{name}}} (known: {})", known_list()));
        }
    }
    for p in Placeholder::ALL {
        if element.contains(&p.to_string()) {
            return Err(format!(
                "placeholder {p} must be a whole argv element, not part of {element:?}"
            ));
        }
    }
    Ok(Arg::Literal(element.to_string()))
}

fn is_placeholder_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn known_list() -> String {
    Placeholder::ALL
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Expands a validated template for `plan`. `extensions` are the language's
/// (lowercase, no dot), used by `{sources}`.
pub(crate) fn expand(template: &[Arg], plan: &Plan, extensions: &[String]) -> Vec<String> {
    let mut argv = Vec::with_capacity(template.len() + plan.args.len());
    for arg in template {
        match arg {
            Arg::Literal(s) => argv.push(s.clone()),
            Arg::Placeholder(Placeholder::Source) => argv.push(plan.entry.clone()),
            Arg::Placeholder(Placeholder::Sources) => argv.extend(sources(plan, extensions)),
            Arg::Placeholder(Placeholder::EntryStem) => argv.push(stem(file_name(&plan.entry)).to_string()),
            Arg::Placeholder(Placeholder::EntryJs) => argv.push(entry_js(&plan.entry)),
            Arg::Placeholder(Placeholder::Args) => argv.extend(plan.args.iter().cloned()),
        }
    }
    argv
}

/// The files `{sources}` stands for: the entry plus every file with one of
/// `extensions` (compared case-insensitively), sorted, without duplicates.
pub(crate) fn sources(plan: &Plan, extensions: &[String]) -> Vec<String> {
    let mut out: Vec<String> = plan
        .files
        .iter()
        .filter(|f| extension(file_name(f)).is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e))))
        .cloned()
        .collect();
    out.push(plan.entry.clone());
    out.sort();
    out.dedup();
    out
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The extension of a file name (`tar.gz` gives `gz`); none for `.bashrc` or `Makefile`.
pub(crate) fn extension(name: &str) -> Option<&str> {
    match name.rfind('.') {
        Some(0) | None => None,
        Some(i) => Some(&name[i + 1..]),
    }
}

fn stem(name: &str) -> &str {
    match name.rfind('.') {
        Some(0) | None => name,
        Some(i) => &name[..i],
    }
}

fn entry_js(entry: &str) -> String {
    let (dir, name) = match entry.rfind('/') {
        Some(i) => (&entry[..=i], &entry[i + 1..]),
        None => ("", entry),
    };
    format!("{ARTEFACT_DIR}/{dir}{}.js", stem(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            entry: "src/Main.java".into(),
            files: vec![
                "src/Util.java".into(),
                "README.md".into(),
                "src/Main.java".into(),
                "a/B.JAVA".into(),
            ],
            args: vec!["one".into(), "two words".into()],
        }
    }

    fn exts() -> Vec<String> {
        vec!["java".into()]
    }

    fn template(items: &[&str]) -> Vec<Arg> {
        items.iter().map(|s| parse_arg(s).unwrap()).collect()
    }

    #[test]
    fn source_is_the_entry_path() {
        assert_eq!(
            expand(&template(&["/bin/x", "{source}"]), &plan(), &exts()),
            ["/bin/x", "src/Main.java"]
        );
    }

    #[test]
    fn sources_are_matching_files_sorted_with_entry() {
        assert_eq!(
            expand(&template(&["/bin/javac", "{sources}", "-x"]), &plan(), &exts()),
            ["/bin/javac", "a/B.JAVA", "src/Main.java", "src/Util.java", "-x"]
        );
        // The entry is compiled even when its extension is not the language's.
        let p = Plan {
            entry: "script".into(),
            files: vec!["script".into()],
            args: vec![],
        };
        assert_eq!(sources(&p, &exts()), ["script"]);
    }

    #[test]
    fn entry_stem_drops_directory_and_extension() {
        assert_eq!(expand(&template(&["{entry_stem}"]), &plan(), &exts()), ["Main"]);
        let p = Plan {
            entry: "noext".into(),
            ..Plan::default()
        };
        assert_eq!(expand(&template(&["{entry_stem}"]), &p, &exts()), ["noext"]);
    }

    #[test]
    fn entry_js_mirrors_the_tree_into_the_artefact_dir() {
        let p = Plan {
            entry: "src/app.ts".into(),
            ..Plan::default()
        };
        assert_eq!(
            expand(&template(&["{entry_js}"]), &p, &exts()),
            ["/workspace/.runbox/src/app.js"]
        );
        let p = Plan {
            entry: "main.ts".into(),
            ..Plan::default()
        };
        assert_eq!(
            expand(&template(&["{entry_js}"]), &p, &exts()),
            ["/workspace/.runbox/main.js"]
        );
    }

    #[test]
    fn args_expand_to_one_element_each() {
        assert_eq!(
            expand(&template(&["/bin/run", "{args}"]), &plan(), &exts()),
            ["/bin/run", "one", "two words"]
        );
        let p = Plan { args: vec![], ..plan() };
        assert_eq!(expand(&template(&["/bin/run", "{args}"]), &p, &exts()), ["/bin/run"]);
    }

    #[test]
    fn user_text_is_never_reinterpreted() {
        let p = Plan {
            entry: "{args}.py".into(),
            files: vec![],
            args: vec!["{source}".into()],
        };
        assert_eq!(
            expand(&template(&["{source}", "{args}"]), &p, &exts()),
            ["{args}.py", "{source}"]
        );
    }

    #[test]
    fn classification() {
        assert_eq!(parse_arg("{sources}").unwrap(), Arg::Placeholder(Placeholder::Sources));
        assert_eq!(parse_arg("-O2").unwrap(), Arg::Literal("-O2".into()));
        assert_eq!(parse_arg("${HOME}").unwrap(), Arg::Literal("${HOME}".into()));
        assert_eq!(parse_arg("{print $1}").unwrap(), Arg::Literal("{print $1}".into()));
        assert_eq!(parse_arg("{}").unwrap(), Arg::Literal("{}".into()));
        assert!(parse_arg("{foo}").unwrap_err().contains("unknown placeholder {foo}"));
        assert!(parse_arg("--out={source}").unwrap_err().contains("whole argv element"));
    }
}

//! The set of languages a runbox instance offers, and the lookups on it.
//!
//! Exists to merge the embedded defaults with an operator's override directory
//! and to enforce the rules that span languages: ids, aliases and extensions
//! must each name exactly one language, so `get("js")` or a file called
//! `app.ts` can never be ambiguous.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::embedded::EMBEDDED;
use crate::error::LangError;
use crate::language::Language;

/// Every language, validated, with lookup tables.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// Sorted by id.
    languages: Vec<Language>,
    /// Lowercase id or alias -> index.
    names: HashMap<String, usize>,
    /// Lowercase extension -> index.
    extensions: HashMap<String, usize>,
    /// Cell magic (`bash` of `%%bash`) -> index.
    magics: HashMap<String, usize>,
}

impl Catalogue {
    /// Loads the embedded languages, then every `*.toml` file directly in
    /// `overrides` (sorted by file name; hidden files ignored): a file whose
    /// `id` matches an embedded language replaces it, any other adds a
    /// language. A missing override directory is an error: it was asked for.
    pub fn load(overrides: Option<&Path>) -> Result<Catalogue, LangError> {
        let mut defaults = Vec::with_capacity(EMBEDDED.len());
        for file in EMBEDDED {
            defaults.push(Language::parse(Path::new(file.path), file.text)?);
        }
        let mut extra = Vec::new();
        if let Some(dir) = overrides {
            for path in override_files(dir)? {
                let text = fs::read_to_string(&path).map_err(|source| LangError::Read {
                    file: path.clone(),
                    source,
                })?;
                extra.push(Language::parse(&path, &text)?);
            }
        }
        Catalogue::from_languages(defaults, extra)
    }

    /// Builds a catalogue from parsed languages: `defaults` first, each of
    /// `overrides` replacing the default with its id or adding to the set.
    /// Ids must be unique within each list; ids, aliases and extensions must
    /// be unique across the result.
    pub fn from_languages(defaults: Vec<Language>, overrides: Vec<Language>) -> Result<Catalogue, LangError> {
        reject_duplicate_ids(&defaults)?;
        reject_duplicate_ids(&overrides)?;
        // Kept defaults first, then overrides, so a clash involving an
        // operator's file is reported against that file.
        let mut ordered: Vec<Language> = defaults
            .into_iter()
            .filter(|d| !overrides.iter().any(|o| o.id() == d.id()))
            .collect();
        ordered.extend(overrides);

        let mut names: HashMap<String, usize> = HashMap::new();
        let mut extensions: HashMap<String, usize> = HashMap::new();
        let mut magics: HashMap<String, usize> = HashMap::new();
        for (index, lang) in ordered.iter().enumerate() {
            let keys = std::iter::once(("id".to_string(), lang.id())).chain(
                lang.aliases()
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (format!("aliases[{i}]"), a.as_str())),
            );
            for (field, key) in keys {
                if let Some(&other) = names.get(key) {
                    let other = &ordered[other];
                    return Err(LangError::invalid(
                        lang.origin(),
                        field,
                        format!(
                            "{key:?} is already a name of {} ({})",
                            other.id(),
                            other.origin().display()
                        ),
                    ));
                }
                names.insert(key.to_string(), index);
            }
            for (i, ext) in lang.extensions().iter().enumerate() {
                if let Some(&other) = extensions.get(ext) {
                    let other = &ordered[other];
                    return Err(LangError::invalid(
                        lang.origin(),
                        format!("extensions[{i}]"),
                        format!(
                            "extension {ext:?} already belongs to {} ({})",
                            other.id(),
                            other.origin().display()
                        ),
                    ));
                }
                extensions.insert(ext.clone(), index);
            }
            for (i, magic) in lang.magics().iter().enumerate() {
                if let Some(&other) = magics.get(magic) {
                    let other = &ordered[other];
                    return Err(LangError::invalid(
                        lang.origin(),
                        format!("magics[{i}]"),
                        format!(
                            "magic {magic:?} already selects {} ({})",
                            other.id(),
                            other.origin().display()
                        ),
                    ));
                }
                magics.insert(magic.clone(), index);
            }
        }

        // Sort by id and remap the tables.
        let mut order: Vec<usize> = (0..ordered.len()).collect();
        order.sort_by(|&a, &b| ordered[a].id().cmp(ordered[b].id()));
        let mut new_index = vec![0; ordered.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        names.values_mut().for_each(|i| *i = new_index[*i]);
        extensions.values_mut().for_each(|i| *i = new_index[*i]);
        magics.values_mut().for_each(|i| *i = new_index[*i]);
        let mut slots: Vec<Option<Language>> = ordered.into_iter().map(Some).collect();
        let languages = order
            .iter()
            .map(|&old| slots[old].take().expect("each index once"))
            .collect();

        Ok(Catalogue {
            languages,
            names,
            extensions,
            magics,
        })
    }

    /// The language with this id or alias, compared case-insensitively.
    pub fn get(&self, id_or_alias: &str) -> Option<&Language> {
        self.names
            .get(&id_or_alias.trim().to_ascii_lowercase())
            .map(|&i| &self.languages[i])
    }

    /// The language a file extension belongs to (`py`, `.py` and `PY` all work).
    pub fn by_extension(&self, ext: &str) -> Option<&Language> {
        let ext = ext.strip_prefix('.').unwrap_or(ext);
        self.extensions
            .get(&ext.to_ascii_lowercase())
            .map(|&i| &self.languages[i])
    }

    /// The language a notebook cell magic selects (`bash` for `%%bash`).
    pub fn by_magic(&self, magic: &str) -> Option<&Language> {
        self.magics.get(magic).map(|&i| &self.languages[i])
    }

    /// The language of a file, from its name's extension (`src/app.ts`).
    pub fn by_file_name(&self, path: &str) -> Option<&Language> {
        let name = path.rsplit('/').next().unwrap_or(path);
        crate::template::extension(name).and_then(|ext| self.by_extension(ext))
    }

    /// Every language, sorted by id.
    pub fn iter(&self) -> std::slice::Iter<'_, Language> {
        self.languages.iter()
    }

    /// Number of languages.
    pub fn len(&self) -> usize {
        self.languages.len()
    }

    /// Whether there are no languages (never true for a loaded catalogue).
    pub fn is_empty(&self) -> bool {
        self.languages.is_empty()
    }
}

impl<'a> IntoIterator for &'a Catalogue {
    type Item = &'a Language;
    type IntoIter = std::slice::Iter<'a, Language>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

fn reject_duplicate_ids(languages: &[Language]) -> Result<(), LangError> {
    for (i, lang) in languages.iter().enumerate() {
        if let Some(first) = languages[..i].iter().find(|l| l.id() == lang.id()) {
            return Err(LangError::invalid(
                lang.origin(),
                "id",
                format!(
                    "language {:?} is already defined by {}",
                    lang.id(),
                    first.origin().display()
                ),
            ));
        }
    }
    Ok(())
}

fn override_files(dir: &Path) -> Result<Vec<PathBuf>, LangError> {
    let err = |source| LangError::OverrideDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        let path = entry.path();
        // Follow symlinks (operators link files in from elsewhere); skip
        // directories; keep anything unreadable so reading it reports why.
        match fs::metadata(&path) {
            Ok(meta) if !meta.is_file() => {}
            _ => files.push(path),
        }
    }
    files.sort();
    Ok(files)
}

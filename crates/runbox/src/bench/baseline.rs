//! The unsandboxed baseline: the bench's programs started as plain child processes of this binary, the way a
//! subprocess service starts them (no namespaces, no cgroups, no pools, no HTTP). The command lines and
//! environments are the language catalogue's own (`languages/*.toml`), with `/workspace` replaced by a temporary
//! directory; the source file is written once, and the C program is compiled once before the measurements, so the
//! baseline runs the same cached binary runbox runs from its compile cache.

use std::path::Path;

use anyhow::{bail, Context};
use runbox_lang::{Catalogue, Language};

use super::drive::Target;

/// `language`'s run command (or its compile command) for `source_name` in `dir`.
fn argv(template: &[String], dir: &Path, source_name: &str) -> Vec<String> {
    let ws = dir.to_string_lossy();
    template
        .iter()
        .filter(|a| a.as_str() != "{args}")
        .map(|a| {
            a.replace("{sources}", source_name)
                .replace("{source}", source_name)
                .replace("/workspace", &ws)
        })
        .collect()
}

fn env(lang: &Language, dir: &Path) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), "/usr/local/bin:/usr/bin:/bin".to_string()),
        ("HOME".to_string(), dir.to_string_lossy().into_owned()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ];
    env.extend(lang.env().iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// A local target running `code` as `language`, in a directory of its own under `root`.
pub fn target(catalogue: &Catalogue, root: &Path, language: &str, code: &str, expect: &str) -> anyhow::Result<Target> {
    let lang = catalogue
        .get(language)
        .with_context(|| format!("no language {language}"))?;
    let dir = root.join(language);
    std::fs::create_dir_all(dir.join(".runbox"))?;
    std::fs::write(dir.join(lang.source_file()), code)?;
    let env = env(lang, &dir);
    if let Some(compile) = lang.compile() {
        let argv = argv(compile.argv_template(), &dir, lang.source_file());
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&dir)
            .output()
            .with_context(|| format!("start {}", argv[0]))?;
        if !out.status.success() {
            bail!("compile {language}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(Target::Local {
        argv: argv(lang.run().argv_template(), &dir, lang.source_file()),
        env,
        dir,
        expect: expect.to_string(),
    })
}

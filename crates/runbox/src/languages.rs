//! `runbox languages`: the catalogue with what this host can run, as a table or as the API's JSON objects.

use clap::Args;

use runbox_engine::host::Background;

use crate::run::{host, CatalogueFlags};

#[derive(Args)]
pub struct LanguagesArgs {
    /// Print the catalogue as JSON (the objects `GET /languages` returns).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    catalogue: CatalogueFlags,
}

pub fn main(args: LanguagesArgs) -> anyhow::Result<i32> {
    let host = host(Default::default(), &args.catalogue, Background::NONE)?;
    let entries = host.engine().languages();
    host.shutdown();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(0);
    }
    println!(
        "{:<12} {:<22} {:<10} {:<9} {:<9} {:<28} ALIASES",
        "ID", "NAME", "VERSION", "COMPILED", "SESSIONS", "AVAILABLE"
    );
    for e in &entries {
        let available = if e.available {
            "yes".to_string()
        } else {
            format!("no: {}", e.reason.as_deref().unwrap_or("?"))
        };
        println!(
            "{:<12} {:<22} {:<10} {:<9} {:<9} {:<28} {}",
            e.id,
            e.name,
            e.version.as_deref().unwrap_or("-"),
            if e.compiled { "yes" } else { "no" },
            if e.sessions { "yes" } else { "no" },
            available,
            e.aliases.join(", ")
        );
    }
    Ok(0)
}

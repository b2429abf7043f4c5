//! The `runbox` binary. `main` dispatches the hidden `jail` subcommand before anything else so that the jail stays
//! a single-threaded process; every other subcommand lives in its own module.

mod bench;
mod doctor;
mod languages;
mod mcp;
mod run;
mod serve;
mod soak;
mod stalls;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "runbox", version, about = "Fast, secure execution of untrusted code")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API server.
    Serve(serve::ServeArgs),
    /// Print the effective server configuration (secrets masked).
    Config(serve::ConfigArgs),
    /// Run a program in a fresh sandbox and print its output; exits with the program's exit code.
    Run(Box<run::RunArgs>),
    /// List the languages and which of them this host can run.
    Languages(languages::LanguagesArgs),
    /// Show which sandbox protections this host offers and which are in force.
    Doctor(doctor::DoctorArgs),
    /// Serve runbox's tools to AI assistants over the Model Context Protocol on stdio.
    Mcp(mcp::McpArgs),
    /// Measure latency, throughput and memory against the speed targets.
    Bench(bench::BenchArgs),
    /// Internal: the sandbox's jail process (reads a spec on stdin, writes frames on stdout).
    #[command(hide = true)]
    Jail,
}

fn main() {
    // The jail must not start threads or touch the terminal: dispatch it first, from raw args.
    if std::env::args_os().nth(1).is_some_and(|a| a == "jail") {
        runbox_sandbox::jail::ignore_sigpipe();
        std::process::exit(runbox_sandbox::jail::main());
    }
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Languages(_) | Command::Config(_) | Command::Doctor(_)
    ) {
        // Printing commands end quietly when their reader goes away (`runbox languages | head`), like any Unix
        // tool. (Not `run` or `serve`: they write to pipes and sockets whose EPIPE they handle.)
        runbox_sandbox::jail::default_sigpipe();
    }
    let result = match cli.command {
        Command::Run(args) => run::main(*args),
        Command::Doctor(args) => doctor::main(args),
        Command::Serve(args) => serve::main(args),
        Command::Config(args) => serve::print_config(args),
        Command::Languages(args) => languages::main(args),
        Command::Bench(args) => bench::main(args),
        Command::Mcp(args) => mcp::main(args),
        Command::Jail => unreachable!("dispatched above"),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("runbox: {e:#}");
            std::process::exit(125);
        }
    }
}

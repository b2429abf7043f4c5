//! The jail as a program of its own: the same code as the hidden `runbox jail` subcommand, in a binary that links
//! nothing of the server. A jail process starts for every sandbox and lives as long as it, so a small binary is
//! cheaper to start and holds less memory per sandbox (see `Jail::current_exe`, which prefers it when it was built
//! together with the running `runbox`).

fn main() {
    if std::env::args_os().nth(1).is_some_and(|a| a == "--build-id") {
        println!("{}", runbox_sandbox::BUILD_ID);
        return;
    }
    runbox_sandbox::jail::ignore_sigpipe();
    std::process::exit(runbox_sandbox::jail::main());
}

//! The real `runbox serve` binary of this crate on a loopback port ([`runbox_testkit::live`]): the ways the tests
//! start it, with the binary Cargo built for them.

use std::path::Path;

pub use runbox_testkit::live::*;

/// `Server::start(...)` and its siblings (in scope with `use live_server::*`).
pub trait StartRunbox {
    /// Starts `runbox serve` on a free loopback port with `--set` settings, and waits for its address.
    fn start(data_dir: &Path, sets: &[&str]) -> Server;
    /// [`StartRunbox::start`] through a wrapper command that ends by exec'ing its arguments (the binary comes
    /// last), e.g. `unshare` to give the server a mount namespace of its own.
    fn start_wrapped(data_dir: &Path, sets: &[&str], wrapper: &[&str]) -> Server;
    /// Like [`StartRunbox::start`], with exactly these variables besides `RUNBOX_LOG` (not even the test's
    /// `NO_COLOR`).
    fn start_with_env(data_dir: &Path, sets: &[&str], env: &[(&str, &str)]) -> Server;
    /// [`StartRunbox::start`], in a process group of its own (which `Server::kill_group` kills as a whole).
    fn start_in_own_group(data_dir: &Path, sets: &[&str]) -> Server;
}

fn launch(data_dir: &Path, sets: &[&str], env: &[(&str, &str)], own_group: bool, wrapper: &[&str]) -> Server {
    Server::launch(Start {
        binary: Path::new(env!("CARGO_BIN_EXE_runbox")),
        data_dir,
        sets,
        env,
        own_group,
        wrapper,
    })
}

impl StartRunbox for Server {
    fn start(data_dir: &Path, sets: &[&str]) -> Server {
        launch(data_dir, sets, &[("NO_COLOR", "1")], false, &[])
    }

    fn start_wrapped(data_dir: &Path, sets: &[&str], wrapper: &[&str]) -> Server {
        launch(data_dir, sets, &[("NO_COLOR", "1")], false, wrapper)
    }

    fn start_with_env(data_dir: &Path, sets: &[&str], env: &[(&str, &str)]) -> Server {
        launch(data_dir, sets, env, false, &[])
    }

    fn start_in_own_group(data_dir: &Path, sets: &[&str]) -> Server {
        launch(data_dir, sets, &[("NO_COLOR", "1")], true, &[])
    }
}

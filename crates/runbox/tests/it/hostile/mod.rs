//! The hostile corpus ([`corpus`], one test) and its runner's parts: the case data ([`case`]), the host-side checks
//! every case is held to ([`host`]) and the requests themselves ([`run`]).

/// Prints a line of the corpus straight to stdout: libtest captures `println!` of a passing test, and the corpus
/// shows its line per case as it comes (as it did when it was a test binary of its own, without the harness).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod case;
mod corpus;
pub mod floods;
pub mod host;
pub mod run;
pub mod wire;

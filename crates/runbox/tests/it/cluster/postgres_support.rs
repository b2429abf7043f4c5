//! A throwaway PostgreSQL for tests: its own cluster (`initdb`) in a temporary directory, started with `pg_ctl`
//! on a free loopback port (and a unix socket in that directory), as the `postgres` user when the test runs as
//! root, and stopped (`immediate`) when dropped. It never touches the system's own PostgreSQL service.
//!
//! PostgreSQL comes from `scripts/install-postgres.sh` (Debian's `postgresql`). Where it is missing, [`start`]
//! returns None and the test says it skipped, except under `CI=true`, where a missing PostgreSQL fails the test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// `postgres://runbox@127.0.0.1:PORT/runbox`, for `database_url`.
    pub url: String,
    as_postgres: bool,
}

/// Where `initdb`, `pg_ctl` and `psql` are: `RUNBOX_PG_BIN`, Debian's `/usr/lib/postgresql/<newest>/bin`, or
/// the `PATH`.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("RUNBOX_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists()))
}

/// A free TCP port on 127.0.0.1 (bound, then released for PostgreSQL to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts a PostgreSQL of the test's own, or None (the test then returns) when PostgreSQL is not installed and
/// `CI` is not `true`.
pub fn start() -> Option<Postgres> {
    let Some(bin) = bin_dir().filter(|b| b.join("psql").exists() || which("psql").is_some()) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL is not installed (initdb, pg_ctl, psql): run scripts/install-postgres.sh"
        );
        eprintln!("SKIPPED: PostgreSQL is not installed (run scripts/install-postgres.sh)");
        return None;
    };
    Some(Postgres::start_in(bin))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.exists()))
}

impl Postgres {
    fn start_in(bin: PathBuf) -> Postgres {
        // PostgreSQL refuses to run as root: as root, its files belong to the `postgres` user and it runs as them.
        let as_postgres = nix::unistd::geteuid().is_root();
        let dir = tempfile::Builder::new().prefix("runbox-pg-").tempdir().unwrap();
        if as_postgres {
            let user = nix::unistd::User::from_name("postgres")
                .unwrap()
                .expect("a postgres user (Debian's postgresql package creates it)");
            nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
        }
        let port = free_port();
        let pg = Postgres {
            url: format!("postgres://runbox@127.0.0.1:{port}/runbox"),
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = pg.data_dir();
        pg.run_tool(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "runbox",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("postgres.log");
        let started = pg.tool(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if !started.status.success() {
            panic!(
                "pg_ctl start failed: {}\n{}\nlog:\n{}",
                String::from_utf8_lossy(&started.stdout),
                String::from_utf8_lossy(&started.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        pg.psql_on("postgres", "CREATE DATABASE runbox");
        pg
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when root) and returns its output.
    fn tool(&self, name: &str, args: &[&str]) -> Output {
        let program = self.bin.join(name);
        let program = if program.exists() {
            program
        } else {
            which(name).unwrap_or_else(|| panic!("{name} not found"))
        };
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("PGDATABASE")
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .env_remove("PGUSER");
        cmd.output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
    }

    fn run_tool(&self, name: &str, args: &[&str]) -> String {
        let out = self.tool(name, args);
        assert!(
            out.status.success(),
            "{name} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn psql_on(&self, db: &str, sql: &str) -> String {
        let socket = self.dir.path().display().to_string();
        let port = self.port.to_string();
        self.run_tool(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &socket,
                "-p",
                &port,
                "-U",
                "runbox",
                "-d",
                db,
                "-c",
                sql,
            ],
        )
    }

    /// Runs `sql` on the `runbox` database; its rows, one a line, columns split by `|`.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_on("runbox", sql).trim().to_string()
    }

    /// Stops the server at once (as a crash would); the test's database is gone with it.
    pub fn stop(&self) {
        let data = self.data_dir();
        self.run_tool(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// The directory holding the cluster, its log and its socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.tool("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"]);
    }
}

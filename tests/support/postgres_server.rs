//! A real Postgres for the Postgres tests, benchmarks and example: `initdb` into a temporary
//! directory, then `postgres` on a Unix socket in that directory (no TCP), without fsync. Run as
//! root, both run as the `postgres` user through `runuser` (Postgres refuses to run as root);
//! run as another user, as that user.
//!
//! The binaries are those of Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`,
//! the newest version found), or of the directory `TOWER_PLANS_PG_BIN` names. Without them,
//! starting a server panics with a message saying how to install them: the Postgres tests never
//! pass by skipping.
//!
//! The server runs under a small shell watchdog that stops it (fast shutdown) and removes its
//! directory once the process that started it is gone, so that a server shared by a whole test
//! binary ([`PostgresServer::shared`]) does not outlive it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The port number in the socket's name (`.s.PGSQL.5432`); nothing listens on TCP.
const PORT: u16 = 5432;

/// One Postgres server of a test.
pub struct PostgresServer {
    dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
}

/// Where the server binaries are: `TOWER_PLANS_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` that holds `initdb`.
fn binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("TOWER_PLANS_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "Postgres is not installed: the Postgres tests start a real server and never skip. \
             Install it with `apt-get install -y postgresql` (Debian/Ubuntu), or point \
             TOWER_PLANS_PG_BIN at a directory holding initdb and postgres, and run again."
        ),
    }
}

/// Whether this process runs as root: then the server runs as the `postgres` user.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A command run as the `postgres` user when this process is root, else as this user.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Makes `path` belong to the `postgres` user when this process is root.
fn give_to_server_user(path: &Path) {
    if !is_root() {
        return;
    }
    let status = Command::new("chown")
        .arg("postgres:postgres")
        .arg(path)
        .status()
        .expect("run chown");
    assert!(
        status.success(),
        "could not give {} to the postgres user (does the user exist? the `postgresql` package \
         creates it)",
        path.display()
    );
}

/// Stops the server it watches (fast shutdown) once the process `$3` is gone, then removes the
/// directory `$2`; exits quietly when the server stops first. `$1` is the `postgres` binary,
/// the rest its arguments.
const WATCHDOG: &str = r#"
bin="$1"; dir="$2"; parent="$3"; shift 3
"$bin" "$@" &
pg=$!
while [ -d "/proc/$parent" ] && kill -0 "$pg" 2>/dev/null; do sleep 0.2; done
if [ ! -d "/proc/$parent" ]; then
  kill -INT "$pg" 2>/dev/null; wait "$pg"; rm -rf "$dir"
fi
"#;

impl PostgresServer {
    /// A fresh server: `initdb`, then `postgres` on its socket; waits until it accepts
    /// connections.
    ///
    /// # Panics
    /// When Postgres is not installed, `initdb` fails, or the server does not come up within 30
    /// seconds.
    pub fn start() -> PostgresServer {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let bin = binaries();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "tower-plans-pg-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory for postgres");
        give_to_server_user(&dir);
        let output = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ])
            .stdin(Stdio::null())
            .output();
        let output = match output {
            Ok(output) => output,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                panic!("runuser or initdb is missing ({error}): install `postgresql` (and `util-linux`)")
            }
            Err(error) => panic!("could not run initdb: {error}"),
        };
        assert!(
            output.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let mut server = PostgresServer {
            dir,
            bin,
            child: None,
        };
        server.spawn();
        server
    }

    /// One server for the whole test binary, started on first use.
    pub fn shared() -> &'static PostgresServer {
        static SHARED: OnceLock<PostgresServer> = OnceLock::new();
        SHARED.get_or_init(PostgresServer::start)
    }

    /// The URL of database `name`.
    pub fn url_of(&self, name: &str) -> String {
        format!(
            "postgres://postgres@localhost/{name}?host={}&port={PORT}",
            self.dir.display()
        )
    }

    /// The URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// Creates a fresh, empty database and returns its URL: each test gets one of its own.
    ///
    /// # Panics
    /// When `psql` fails.
    pub fn database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url_of(&name)
    }

    /// Runs `sql` on database `database` with `psql`.
    ///
    /// # Panics
    /// When `psql` fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &PORT.to_string(), "-U", "postgres", "-d", database])
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-t", "-A", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Whether the server runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server (fast shutdown: every connection is closed at once) and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = self.postmaster_pid() {
            // Root, or the user the server runs as: either may signal it.
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
        }
        let _ = child.wait();
    }

    /// Stops the server and starts it again on the same data and socket.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The postmaster's process id, from `postmaster.pid`.
    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Whether `postmaster.pid` says the server accepts connections.
    fn is_ready(&self) -> bool {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .is_ok_and(|text| text.lines().nth(7).is_some_and(|s| s.trim() == "ready"))
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.data().join("postmaster.pid"));
        let mut command = as_server_user(Path::new("sh"));
        command
            .args(["-c", WATCHDOG, "watchdog"])
            .arg(self.bin.join("postgres"))
            .arg(&self.dir)
            .arg(std::process::id().to_string())
            .arg("-D")
            .arg(self.data())
            .arg("-k")
            .arg(&self.dir)
            .args(["-p", &PORT.to_string()])
            .args(["-c", "listen_addresses="])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.is_ready() {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("postgres exited at start with {status}");
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "postgres did not accept connections in {} within 30 seconds",
            self.dir.display()
        );
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

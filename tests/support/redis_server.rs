//! A real `redis-server` for the Redis tests and benchmarks: started on a Unix socket in a
//! temporary directory, without persistence, stopped (and the directory removed) on drop.
//!
//! Without `redis-server` on the `PATH`, starting one panics with a message saying how to
//! install it: the Redis tests never pass by skipping.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One `redis-server` process of a test.
pub struct RedisServer {
    dir: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a fresh Unix socket and waits until it answers `PING`.
    ///
    /// # Panics
    /// When `redis-server` is not installed or does not come up within 10 seconds.
    pub fn start() -> RedisServer {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "tower-plans-redis-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory for redis-server");
        let socket = dir.join("redis.sock");
        let mut server = RedisServer {
            dir,
            socket,
            child: None,
        };
        server.spawn();
        server
    }

    /// The URL to connect to it.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Whether the server runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server at once (SIGKILL), as a crash or an outage would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a running redis-server");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts the server again on the same socket, empty (nothing is persisted).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--loglevel", "warning", "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed: the Redis tests start a real one and never skip. \
                 Install it with `apt-get install -y redis-server` (Debian/Ubuntu) and run again."
            ),
            Err(error) => panic!("could not start redis-server: {error}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ping(&self.socket) {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("redis-server exited at start with {status}");
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server did not answer on {} within 10 seconds",
            self.socket.display()
        );
    }
}

/// Whether a server answers `PING` on `socket`.
fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A frozen server would not die of SIGKILL any later, but let it go on first anyway.
        if self.child.is_some() {
            self.signal("-CONT");
        }
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

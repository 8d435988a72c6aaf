//! Headless Chromium, one process per page: the DOM once the page's script has run, a
//! screenshot, and what Chromium logged.
//!
//! Chromium is Debian's `chromium` (`CHROMIUM` names another binary). When it is missing or
//! does not start, the test panics saying how to install it: it never passes by skipping.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::process::Command;

/// A phone's width, and tall enough for the whole page in the screenshot.
const WINDOW: &str = "412,1600";
/// How long the page may run, in virtual time: Chromium stops the clock while the fetch is
/// on the wire, so this bounds timers, not the network.
const VIRTUAL_TIME_MS: u32 = 10_000;
/// How long one run may take for real before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// What one run of Chromium gave.
pub struct Rendered {
    /// The serialised DOM.
    pub dom: String,
    /// Chromium's log (console messages, Content-Security-Policy violations).
    pub log: String,
    /// How long the run took.
    pub took: Duration,
}

fn binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

/// Whether this process runs as root, where Chromium's sandbox cannot start.
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A fresh profile directory, so that runs share nothing and leave nothing in `$HOME`.
fn profile() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tower-plans-chromium-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a profile directory for Chromium");
    dir
}

/// Loads `url` headless at a phone's width, lets its fetch finish, writes a PNG screenshot
/// to `screenshot` and returns the DOM.
///
/// # Panics
/// When Chromium is missing, does not start, fails, takes longer than a minute, or writes no
/// screenshot.
pub async fn render(url: &str, screenshot: &Path) -> Rendered {
    let profile = profile();
    let _ = std::fs::remove_file(screenshot);
    let mut command = Command::new(binary());
    if is_root() {
        command.arg("--no-sandbox");
    }
    command
        .args([
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--disable-sync",
            "--no-pings",
            // Nothing but loopback resolves: the page must need nothing from elsewhere.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={WINDOW}"))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--dump-dom")
        .arg(url)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let child = command.spawn().unwrap_or_else(|error| {
        panic!(
            "cannot start `{}` ({error}): install Debian's chromium (`apt-get install -y \
             chromium`, as .ci/run does) or set CHROMIUM to a Chromium binary",
            binary()
        )
    });
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("Chromium took more than {DEADLINE:?} on {url}"))
        .expect("wait for Chromium");
    let took = started.elapsed();
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success() && !dom.is_empty(),
        "Chromium failed on {url} ({}); its log:\n{log}",
        output.status
    );
    let png = std::fs::read(screenshot).unwrap_or_else(|error| {
        panic!(
            "Chromium wrote no screenshot at {} ({error}); its log:\n{log}",
            screenshot.display()
        )
    });
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "{} is not a PNG of a page",
        screenshot.display()
    );
    Rendered { dom, log, took }
}

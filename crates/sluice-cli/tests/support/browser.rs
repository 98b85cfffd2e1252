//! A real headless Chromium (Debian's `chromium`, which `scripts/setup` installs when it is
//! missing) reading sluice's HTML pages from `file://`: the DOM it built, as visible text, and a
//! screenshot. Each browser has its own profile and HOME in a temporary folder, so it runs as
//! root in a 0700 home (with `--no-sandbox`, which Chromium needs as root).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long one page may take before the browser is stopped and the test fails.
const PAGE_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Chromium {
    binary: PathBuf,
    profile: TempDir,
}

/// `chromium` on PATH, else `/usr/bin/chromium`; `None` when neither is a file.
fn chromium_binary() -> Option<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("chromium"))
                .collect()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin/chromium")])
        .find(|p| p.is_file())
}

impl Chromium {
    /// The browser, or a failure that says how to install it: these tests never skip.
    pub fn find() -> Chromium {
        let binary = chromium_binary().unwrap_or_else(|| {
            panic!("chromium is not installed: run scripts/setup (it installs Debian's `chromium` package), then run this test again")
        });
        let chromium = Chromium {
            binary,
            profile: tempfile::tempdir().unwrap(),
        };
        let version = chromium.run(&["--version"]);
        assert!(
            version.starts_with("Chromium"),
            "{} is not Chromium ({version:?}): run scripts/setup",
            chromium.binary.display()
        );
        chromium
    }

    /// Runs the browser headless with `args`, and returns its stdout; fails the test when it
    /// fails or hangs.
    fn run(&self, args: &[&str]) -> String {
        let home = self.profile.path();
        let mut child = Command::new(&self.binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .args(["--disable-extensions", "--hide-scrollbars"])
            .arg(format!(
                "--user-data-dir={}",
                home.join("profile").display()
            ))
            .args(args)
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        let stdout = read_all(child.stdout.take().unwrap());
        let stderr = read_all(child.stderr.take().unwrap());
        let status = wait_or_kill(&mut child);
        let stderr = stderr.join().unwrap();
        assert!(
            status.success(),
            "chromium {args:?} failed: {status}\n{stderr}"
        );
        stdout.join().unwrap()
    }

    /// The page's DOM after Chromium parsed and laid it out.
    pub fn dump_dom(&self, page: &Path) -> String {
        let dom = self.run(&["--dump-dom", &file_url(page)]);
        assert!(dom.contains("<body"), "no DOM from chromium: {dom:?}");
        dom
    }

    /// A 1280 × 2000 screenshot of the page; returns the PNG's bytes.
    pub fn screenshot(&self, page: &Path, png: &Path) -> Vec<u8> {
        self.run(&[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,2000",
            &file_url(page),
        ]);
        let bytes = std::fs::read(png).expect("chromium wrote no screenshot");
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            png.display()
        );
        bytes
    }
}

/// Reads a pipe to its end on a thread of its own, so that neither pipe fills while the other
/// is read.
fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = pipe.read_to_string(&mut out);
        out
    })
}

fn wait_or_kill(child: &mut std::process::Child) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > PAGE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {PAGE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn file_url(page: &Path) -> String {
    let absolute = std::fs::canonicalize(page).unwrap();
    format!("file://{}", absolute.display())
}

/// The text a reader sees: the body without its tags, entities decoded, runs of white space
/// as one space.
pub fn visible_text(dom: &str) -> String {
    let body = dom.find("<body").map_or(dom, |at| &dom[at..]);
    let mut text = String::with_capacity(body.len());
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let decoded = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Copies a screenshot to `TARGET/html-screenshots/NAME`, where it stays after the test's
/// temporary folder is gone, and prints that path.
pub fn keep_screenshot(png: &Path, name: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_BIN_EXE_sluice"))
        .parent()
        .and_then(Path::parent)
        .expect("the target folder");
    let dir = target.join("html-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let kept = dir.join(name);
    std::fs::copy(png, &kept).unwrap();
    println!("screenshot: {}", kept.display());
    kept
}

//! Asking for a key file's passphrase the way OpenSSH does: on the terminal (`/dev/tty`, echo
//! off), or through the `SSH_ASKPASS` program when there is no terminal.
//!
//! `SSH_ASKPASS_REQUIRE` is honoured: `force` always runs `SSH_ASKPASS`; `prefer` runs it when
//! it is set and otherwise asks on the terminal; `never` only asks on the terminal. Unlike
//! OpenSSH, `SSH_ASKPASS` is used without `DISPLAY` (CI and remote shells have none), and there
//! is no default askpass program: it must be set to be used.
//!
//! The askpass program is run as OpenSSH runs it: the prompt is its one argument, the passphrase
//! is what it prints on stdout up to the first newline, and a non-zero exit means "cancelled".
//! The passphrase is held in memory wiped on drop, never printed, and never passed to a child.
//!
//! On the terminal, `rpassword` reads the line (raw mode: backspace, Ctrl-U, Ctrl-W, Ctrl-C);
//! [`terminal::read`] turns echo off *before* the prompt is written (rpassword writes its prompt
//! first, so text typed at once would be echoed) and discards anything typed ahead, and restores
//! the terminal before a Ctrl-C ends the process (rpassword raises SIGINT while still in raw mode).

use sluice::approval::Passphrase;
use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use zeroize::Zeroizing;

/// How many passphrases the terminal asks for before giving up (as ssh-add does).
const TERMINAL_ATTEMPTS: u32 = 3;
/// The most of the askpass program's output that is read.
const ASKPASS_MAX: u64 = 8 * 1024;

/// Where a passphrase comes from, decided once from the environment.
pub enum Asker {
    Terminal,
    Askpass(OsString),
    /// Neither can be used; the reason says why.
    Nowhere(String),
}

impl Asker {
    /// From `SSH_ASKPASS`, `SSH_ASKPASS_REQUIRE` and whether `/dev/tty` opens.
    pub fn from_env() -> Asker {
        let askpass = std::env::var_os("SSH_ASKPASS").filter(|p| !p.is_empty());
        let require = std::env::var("SSH_ASKPASS_REQUIRE")
            .unwrap_or_default()
            .to_ascii_lowercase();
        match (require.as_str(), askpass) {
            ("force", Some(program)) | ("prefer", Some(program)) => Asker::Askpass(program),
            ("force", None) => {
                Asker::Nowhere("SSH_ASKPASS_REQUIRE=force but SSH_ASKPASS names no program".into())
            }
            ("never", _) => {
                if has_terminal() {
                    Asker::Terminal
                } else {
                    Asker::Nowhere(
                        "there is no terminal to ask on, and SSH_ASKPASS_REQUIRE=never".into(),
                    )
                }
            }
            (_, askpass) => match (has_terminal(), askpass) {
                (true, _) => Asker::Terminal,
                (false, Some(program)) => Asker::Askpass(program),
                (false, None) => Asker::Nowhere(
                    "there is no terminal to ask on and SSH_ASKPASS is not set (set it to a \
                     program that prints the passphrase, or sign with --agent)"
                        .into(),
                ),
            },
        }
    }
}

impl Passphrase for Asker {
    fn ask(&mut self, path: &Path, attempt: u32) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        let prompt = format!("Enter passphrase for key '{}': ", path.display());
        match self {
            Asker::Nowhere(reason) => Err(reason.clone()),
            Asker::Terminal => {
                if attempt > TERMINAL_ATTEMPTS {
                    return Ok(None);
                }
                if attempt > 1 {
                    eprintln!("wrong passphrase, try again");
                }
                let read = terminal::read(&prompt)
                    .map_err(|err| format!("cannot read it from the terminal: {err}"))?;
                Ok(Some(read))
            }
            Asker::Askpass(program) => {
                // the program prints the same thing every time: one attempt
                if attempt > 1 {
                    return Ok(None);
                }
                run_askpass(program, &prompt).map(Some)
            }
        }
    }
}

/// Whether the controlling terminal can be opened.
fn has_terminal() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

/// Runs the askpass program with the prompt as its argument; its stdout up to the first `\r` or
/// `\n` is the passphrase.
fn run_askpass(program: &OsString, prompt: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let name = Path::new(program).display().to_string();
    let mut child = sluice::target::child_command(program)
        .arg(prompt)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|err| format!("cannot run SSH_ASKPASS program {name}: {err}"))?;
    let mut output = Zeroizing::new(Vec::new());
    let read = match child.stdout.take() {
        Some(stdout) => stdout
            .take(ASKPASS_MAX)
            .read_to_end(&mut output)
            .map(|_| ()),
        None => Ok(()),
    };
    let status = child
        .wait()
        .map_err(|err| format!("SSH_ASKPASS program {name}: {err}"))?;
    read.map_err(|err| format!("cannot read the output of SSH_ASKPASS program {name}: {err}"))?;
    if !status.success() {
        return Err(format!(
            "SSH_ASKPASS program {name} exited with {status} (cancelled)"
        ));
    }
    let end = output
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap_or(output.len());
    output.truncate(end);
    Ok(output)
}

/// Reading a line from `/dev/tty` with echo off from before the prompt until after the answer.
mod terminal {
    use std::io;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    use zeroize::Zeroizing;

    /// Set by the SIGINT handler installed while the passphrase is read.
    static INTERRUPTED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_sigint(_signal: libc::c_int) {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }

    /// Puts the terminal and the SIGINT action back as they were, also on an early return.
    struct Restore {
        fd: libc::c_int,
        termios: libc::termios,
        sigint: libc::sigaction,
    }

    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: fd is the open /dev/tty; both structs were filled by the calls they undo
            unsafe {
                libc::tcsetattr(self.fd, libc::TCSANOW, &self.termios);
                libc::sigaction(libc::SIGINT, &self.sigint, std::ptr::null_mut());
            }
        }
    }

    pub fn read(prompt: &str) -> io::Result<Zeroizing<Vec<u8>>> {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")?;
        let fd = tty.as_raw_fd();
        // SAFETY: plain libc calls on an open descriptor with zero-initialised C structs
        let restore = unsafe {
            let mut termios: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut termios) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut catch: libc::sigaction = std::mem::zeroed();
            catch.sa_sigaction = on_sigint as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut catch.sa_mask);
            let mut sigint: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGINT, &catch, &mut sigint) != 0 {
                return Err(io::Error::last_os_error());
            }
            let restore = Restore {
                fd,
                termios,
                sigint,
            };
            let mut quiet = termios;
            quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
            // TCSAFLUSH: what was typed before the prompt is discarded, never echoed or read
            if libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) != 0 {
                return Err(io::Error::last_os_error());
            }
            restore
        };
        INTERRUPTED.store(false, Ordering::SeqCst);
        let read = rpassword::prompt_password(prompt);
        drop(restore);
        if INTERRUPTED.swap(false, Ordering::SeqCst) {
            // the terminal is itself again: now let the Ctrl-C end the process as usual
            // SAFETY: raising a signal whose default action is back in place
            unsafe { libc::raise(libc::SIGINT) };
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        read.map(|text| Zeroizing::new(text.into_bytes()))
    }
}

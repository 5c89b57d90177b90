//! Real programs no one here wrote (Debian's `prometheus` and `promtool`, Python clients from
//! PyPI), started from tests: present → used; missing → the test fails when `CI=true` (CI
//! installs them, `.ci/run`) and is skipped with a notice otherwise.

use std::process::{Child, Command, Stdio};

/// Whether `program` runs (`program --version` or `program -c`), else skip or fail.
pub fn have(what: &str, check: &mut Command) -> bool {
    let ok = check
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{what} is missing; CI installs it (.ci/run): it must be there when CI=true");
        }
        eprintln!(
            "notice: {what} is missing; skipping the test that needs it (.ci/run installs it)"
        );
    }
    ok
}

pub fn have_program(program: &str) -> bool {
    have(program, Command::new(program).arg("--version"))
}

/// Whether Python 3 can import `module` (pip package `package`).
pub fn have_python(module: &str, package: &str) -> bool {
    have(
        &format!("python3 with {package} (pip install {package})"),
        Command::new("python3").args(["-c", &format!("import {module}")]),
    )
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a Python script (given as text) with arguments; returns its output, failing the test
/// with the script's stderr if it fails.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python script failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts a Python script in the background.
pub fn python_background(script: &str, args: &[&str]) -> Running {
    Running(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts"),
    )
}

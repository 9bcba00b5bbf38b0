//! The end-to-end harness: an `xde-host` control server on a socket in a
//! temporary directory of its own (served by a thread of the test
//! process), and `opteadm` run as a subprocess against it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use xde_host::{Access, CtlServer, ServerHandle, new_driver};

/// A running control server in its own directory; dropping it stops the
/// server and removes the directory.
pub struct Host {
    pub dir: PathBuf,
    pub sock: PathBuf,
    server: Option<ServerHandle>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system's temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("opteadm-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Host {
    /// A server allowing root only.
    pub fn start(tag: &str) -> Self {
        Self::start_with(tag, Access::root_only())
    }

    /// A server allowing root and `access`.
    pub fn start_with(tag: &str, access: Access) -> Self {
        let dir = temp_dir(tag);
        let sock = dir.join("ctl.sock");
        let server = CtlServer::bind(&sock, access, new_driver()).unwrap().spawn().unwrap();
        Self { dir, sock, server: Some(server) }
    }

    pub fn server(&self) -> &ServerHandle {
        self.server.as_ref().unwrap()
    }

    /// Run opteadm with these arguments (and standard input).
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_opteadm(&self.sock, args, stdin, None)
    }

    /// Run opteadm and expect success; its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_in(args, None)
    }

    /// As [`Host::ok`] with standard input.
    pub fn ok_in(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.run(args, stdin);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "opteadm {args:?} failed: {err}");
        assert!(err.is_empty(), "opteadm {args:?} wrote to stderr: {err}");
        String::from_utf8(o.stdout).unwrap()
    }

    /// Run opteadm and expect failure; its standard error, which must be
    /// one line starting `opteadm: `.
    pub fn fails(&self, args: &[&str]) -> String {
        self.fails_in(args, None)
    }

    /// As [`Host::fails`] with standard input.
    pub fn fails_in(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.run(args, stdin);
        assert!(!o.status.success(), "opteadm {args:?} succeeded");
        expect_one_error_line(&o)
    }

    /// Parse JSON output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("opteadm {args:?}: {e}: {out}"))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.server.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The one stderr line of a failed run.
pub fn expect_one_error_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    assert!(err.starts_with("opteadm: "), "{err}");
    assert!(o.stdout.is_empty(), "nothing on stdout: {}", String::from_utf8_lossy(&o.stdout));
    err
}

/// Run opteadm against `sock`, optionally as another user and group.
pub fn run_opteadm(
    sock: &Path,
    args: &[&str],
    stdin: Option<&str>,
    as_user: Option<(u32, u32)>,
) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opteadm"));
    c.arg("--ctl").arg(sock).args(args).env_remove("OPTE_CTL");
    c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some((uid, gid)) = as_user {
        use std::os::unix::process::CommandExt;
        c.uid(uid).gid(gid);
    }
    let mut child = c.spawn().unwrap();
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// The standard port's flags (guest 172.30.0.5 / fd00::5).
pub fn create_args(name: &str) -> Vec<String> {
    [
        "create-xde",
        name,
        "--guest-mac",
        "a8:40:25:f7:00:05",
        "--gateway-mac",
        "a8:40:25:ff:77:77",
        "--vni",
        "7777",
        "--phys-ip",
        "fd77::a",
        "--private-ip",
        "172.30.0.5",
        "--gateway-ip",
        "172.30.0.1",
        "--vpc-subnet",
        "172.30.0.0/22",
        "--private-ipv6",
        "fd00::5",
        "--gateway-ipv6",
        "fd00::1",
        "--vpc-subnet6",
        "fd00::/64",
        "--snat",
        "10.77.77.13:1025-4096",
        "--dns",
        "8.8.8.8",
        "--hostname",
        "guest-a",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Borrow a `Vec<String>` as `&[&str]`.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// True when this process is root (the tests of other users need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

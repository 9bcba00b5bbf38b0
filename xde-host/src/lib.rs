//! xde-host: the `xde` driver as a Linux process. `fakekernel` provides
//! the illumos kernel functions the driver calls; this crate provides
//! what the illumos kernel would: a control node. Packet I/O (guests on
//! TAP devices, the underlay on packet sockets) comes in a later issue.
//!
//! # The control socket
//!
//! [`CtlServer`] serves the driver's commands on a Unix stream socket
//! (default [`DEFAULT_CTL`]), one command per connection, in the framing
//! of `opte_ioctl::frame`: the same header and bytes as an ioctl on
//! illumos, given to the same handler (`xde::control::XdeCtl::execute`).
//!
//! Who may command the driver: the socket is created with mode 0600
//! (0660 and the group's ownership with `--group`), and every
//! connection's peer credentials (`SO_PEERCRED`) are checked as well:
//! root, or (with `--group NAME`) a process whose group or whose user's
//! groups include that group. Anyone else is answered with a permission
//! error (`EPERM`) and the command is not run, so a socket whose mode was
//! loosened by mistake still changes nothing.
//!
//! The socket is bound in a private directory (mode 0700) and renamed
//! into place after its mode and group are set, so it is never reachable
//! with looser permissions.
//!
//! # Limits
//!
//! At most [`MAX_CONNECTIONS`] commands run at once (more are closed
//! unanswered); each connection has [`CONN_TIMEOUT`] for each read and
//! write; request bodies are refused past `MAX_REQ_LEN` without being
//! read.

use std::ffi::{CStr, CString};
use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use opte_api::cmd::error_text;
use opte_api::{MAX_REQ_LEN, OpteCmd, OpteError};
use opte_ioctl::frame;
use xde::control::refuse;

pub use opte_ioctl::DEFAULT_CTL_SOCKET as DEFAULT_CTL;
pub use xde::control::XdeCtl;

/// A driver with no ports and the default flow table limits.
pub fn new_driver() -> Arc<XdeCtl> {
    Arc::new(XdeCtl::new(oxide_vpc::engine::PortLimits::default()))
}

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// How long one read or write on a connection may block.
pub const CONN_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may issue commands besides root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The group allowed (name and id), if any.
    group: Option<(String, u32)>,
}

/// A connected peer's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id.
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

impl Access {
    /// Root only.
    pub fn root_only() -> Self {
        Self { group: None }
    }

    /// Root and the members of group `name`.
    pub fn with_group(name: &str) -> io::Result<Self> {
        let gid = group_id(name)?;
        Ok(Self { group: Some((name.to_string(), gid)) })
    }

    /// The group's id, if a group is allowed.
    pub fn gid(&self) -> Option<u32> {
        self.group.as_ref().map(|(_, g)| *g)
    }

    /// May this peer issue commands? The error says why not.
    pub fn check(&self, p: &PeerCred) -> Result<(), OpteError> {
        if p.uid == 0 {
            return Ok(());
        }
        match &self.group {
            None => Err(OpteError::PermissionDenied(format!(
                "uid {} is not root (xde-host allows other users only with --group)",
                p.uid
            ))),
            Some((name, gid)) => {
                if p.gid == *gid || user_groups(p.uid, p.gid).contains(gid) {
                    Ok(())
                } else {
                    Err(OpteError::PermissionDenied(format!(
                        "uid {} is neither root nor a member of group {name}",
                        p.uid
                    )))
                }
            }
        }
    }
}

/// The credentials of the process at the other end of `s`.
pub fn peer_cred(s: &UnixStream) -> io::Result<PeerCred> {
    let mut c = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `c` is a writable ucred and `len` its size, as SO_PEERCRED
    // requires; the descriptor is open for the call's duration.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut c as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred { pid: c.pid, uid: c.uid, gid: c.gid })
}

/// The id of group `name`.
fn group_id(name: &str) -> io::Result<u32> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "group name holds a NUL"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all-zero is a valid `group` (null pointers, zero id).
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` is its length.
    let rc = unsafe {
        libc::getgrnam_r(cname.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut out)
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if out.is_null() {
        return Err(io::Error::new(ErrorKind::NotFound, format!("no group named {name}")));
    }
    Ok(grp.gr_gid)
}

/// The groups of user `uid` (primary group `gid`), from the group
/// database; empty if the user is unknown.
fn user_groups(uid: u32, gid: u32) -> Vec<u32> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids).
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` is its length.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() || pw.pw_name.is_null() {
        return Vec::new();
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points at a NUL-terminated
    // name inside `buf`, which is alive.
    let name: &CStr = unsafe { CStr::from_ptr(pw.pw_name) };
    let mut groups = vec![0 as libc::gid_t; 1024];
    let mut n = groups.len() as libc::c_int;
    // SAFETY: `groups` holds `n` entries; the name is NUL-terminated.
    let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
    if rc < 0 {
        // More than 1024 groups: those that fit are enough to refuse
        // safely (a member beyond them is refused, never the reverse).
        n = groups.len() as libc::c_int;
    }
    groups.truncate(usize::try_from(n).unwrap_or(0));
    groups
}

/// A bound control socket and the driver it serves.
pub struct CtlServer {
    listener: UnixListener,
    path: PathBuf,
    ctl: Arc<XdeCtl>,
    access: Arc<Access>,
}

impl CtlServer {
    /// Bind the control socket at `path` (its directory is created if
    /// missing; a stale socket is replaced, a live one is an error) for
    /// `ctl`, allowing root and `access`.
    pub fn bind(path: &Path, access: Access, ctl: Arc<XdeCtl>) -> io::Result<Self> {
        fakekernel::link_kernel_symbols();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(io::Error::new(
                        ErrorKind::AddrInUse,
                        format!("{} is in use by a running server", path.display()),
                    ));
                }
                fs::remove_file(path)?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Bind in a private directory, set mode and group, then move the
        // socket into place: it is never reachable with looser modes.
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(ErrorKind::InvalidInput, "the socket path names no file")
        })?;
        let private = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
        let _ = fs::remove_dir_all(&private);
        fs::create_dir(&private)?;
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700))?;
        let tmp = private.join("s");
        let bound = (|| -> io::Result<UnixListener> {
            let listener = UnixListener::bind(&tmp)?;
            let mode = if let Some(gid) = access.gid() {
                std::os::unix::fs::chown(&tmp, None, Some(gid))?;
                0o660
            } else {
                0o600
            };
            fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
            fs::rename(&tmp, path)?;
            Ok(listener)
        })();
        let _ = fs::remove_dir_all(&private);
        let listener = bound?;
        Ok(Self { listener, path: path.to_path_buf(), ctl, access: Arc::new(access) })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The driver served.
    pub fn driver(&self) -> &Arc<XdeCtl> {
        &self.ctl
    }

    /// Serve until `stop` is set (checked after each connection).
    pub fn run(&self, stop: &AtomicBool) -> io::Result<()> {
        let active = Arc::new(AtomicUsize::new(0));
        for conn in self.listener.incoming() {
            if stop.load(Ordering::Acquire) {
                break;
            }
            let s = match conn {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("xde-host: accept on {}: {e}", self.path.display());
                    continue;
                }
            };
            if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                active.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            let ctl = Arc::clone(&self.ctl);
            let access = Arc::clone(&self.access);
            let count = Arc::clone(&active);
            let spawned =
                std::thread::Builder::new().name("xde-host-ctl".into()).spawn(move || {
                    if let Err(e) = serve_one(&ctl, &access, s) {
                        eprintln!("xde-host: connection: {e}");
                    }
                    count.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_err() {
                active.fetch_sub(1, Ordering::AcqRel);
            }
        }
        Ok(())
    }

    /// Serve on a thread of its own until the handle is dropped (then the
    /// socket is removed).
    pub fn spawn(self) -> io::Result<ServerHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let path = self.path.clone();
        let ctl = Arc::clone(&self.ctl);
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("xde-host-accept".into())
            .spawn(move || self.run(&flag))?;
        Ok(ServerHandle { stop, path, ctl, thread: Some(thread) })
    }
}

/// A server running on its own thread; dropping it stops the server and
/// removes the socket.
pub struct ServerHandle {
    stop: Arc<AtomicBool>,
    path: PathBuf,
    ctl: Arc<XdeCtl>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl ServerHandle {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The driver served.
    pub fn driver(&self) -> &Arc<XdeCtl> {
        &self.ctl
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

/// Serve one command on one connection.
fn serve_one(ctl: &XdeCtl, access: &Access, mut s: UnixStream) -> io::Result<()> {
    s.set_read_timeout(Some(CONN_TIMEOUT))?;
    s.set_write_timeout(Some(CONN_TIMEOUT))?;
    let peer = peer_cred(&s);
    let mut hdr = match frame::read_header(&mut s) {
        Ok(h) => h,
        // The stop wake-up, or a client that sent nothing.
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
        Err(e) => return Err(e),
    };
    let cmd_name =
        || OpteCmd::try_from(hdr.cmd).map(OpteCmd::name).unwrap_or("unknown command").to_string();
    let denied = match &peer {
        Ok(p) => access.check(p).err(),
        Err(e) => Some(OpteError::PermissionDenied(error_text(&format!(
            "cannot read the peer's credentials: {e}"
        )))),
    };
    if let Some(err) = denied {
        if hdr.req_len <= MAX_REQ_LEN {
            // Read (and drop) the request so the peer sees the answer.
            let _ = frame::read_body(&mut s, hdr.req_len);
        }
        let out = refuse(&mut hdr, &err);
        return frame::write_reply(&mut s, &hdr, out.errno, &out.body);
    }
    if hdr.req_len > MAX_REQ_LEN {
        // The handler refuses it from the header alone.
        let out = ctl.execute(&mut hdr, &[]);
        return frame::write_reply(&mut s, &hdr, out.errno, &out.body);
    }
    let body = match frame::read_body(&mut s, hdr.req_len) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
            let err = OpteError::Malformed { cmd: cmd_name(), why: error_text(&e.to_string()) };
            let out = refuse(&mut hdr, &err);
            return frame::write_reply(&mut s, &hdr, out.errno, &out.body);
        }
        Err(e) => return Err(e),
    };
    let out = ctl.execute(&mut hdr, &body);
    frame::write_reply(&mut s, &hdr, out.errno, &out.body)
}

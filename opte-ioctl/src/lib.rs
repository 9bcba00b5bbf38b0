//! The userland client of the opte control contract (`opte_api::cmd`):
//! how `opteadm` and the control plane reach the driver.
//!
//! - On illumos the driver is `/dev/xde`: a command is
//!   `ioctl(fd, XDE_IOC_OPTE_CMD, &hdr)` with the [`OpteCmdIoctl`]
//!   header pointing at the request and reply buffers.
//! - Elsewhere (and on illumos when a socket path is given) the driver is
//!   an `xde-host` process behind a Unix socket: the path from `--ctl`,
//!   else the `OPTE_CTL` environment variable, else
//!   [`DEFAULT_CTL_SOCKET`]. The same header and bytes travel in the
//!   framing of [`frame`].
//!
//! [`OpteHdl::call`] encodes a request, sends it, and decodes the reply
//! or the driver's [`OpteError`]. A reply too large for the first buffer
//! ([`MIN_RESP_LEN`] bytes) is fetched again, once, with a buffer of the
//! size the driver asked for. [`OpteHdl::send_raw`] sends a header and
//! bytes as given (for tests of the driver's checks).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use opte_api::OpteError;
use opte_api::cmd::{decode, encode, errno, error_text};
use opte_api::{API_VERSION, MAX_REQ_LEN, MAX_RESP_LEN, MIN_RESP_LEN, OpteCmd, OpteCmdIoctl};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod frame;

/// Where `xde-host` listens unless told otherwise.
pub const DEFAULT_CTL_SOCKET: &str = "/run/xde-host/ctl.sock";

/// The environment variable naming the control socket.
pub const CTL_ENV: &str = "OPTE_CTL";

/// The illumos driver's control node.
pub const XDE_DEVICE: &str = "/dev/xde";

/// How long a socket command may take before the client gives up.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the driver is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The illumos control node (`/dev/xde`).
    Device(PathBuf),
    /// An `xde-host` control socket.
    Socket(PathBuf),
}

impl Endpoint {
    /// The endpoint for an optional `--ctl` path: that socket; else
    /// `OPTE_CTL`'s; else `/dev/xde` on illumos and
    /// [`DEFAULT_CTL_SOCKET`] elsewhere.
    pub fn resolve(ctl: Option<&Path>) -> Self {
        if let Some(p) = ctl {
            return Self::Socket(p.to_path_buf());
        }
        if let Some(p) = std::env::var_os(CTL_ENV).filter(|p| !p.is_empty()) {
            return Self::Socket(PathBuf::from(p));
        }
        if cfg!(target_os = "illumos") {
            Self::Device(PathBuf::from(XDE_DEVICE))
        } else {
            Self::Socket(PathBuf::from(DEFAULT_CTL_SOCKET))
        }
    }

    fn path(&self) -> &Path {
        match self {
            Self::Device(p) | Self::Socket(p) => p,
        }
    }
}

/// What the driver answered, as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawReply {
    /// The header as the driver returned it (`resp_len_needed` set).
    pub hdr: OpteCmdIoctl,
    /// 0 on success, else the errno.
    pub errno: i32,
    /// The reply body, the encoded error, or nothing.
    pub body: Vec<u8>,
}

impl RawReply {
    /// The reply decoded as `cmd`'s reply `T`, or the driver's error.
    pub fn decode<T: DeserializeOwned>(&self, cmd: OpteCmd) -> Result<T, OpteError> {
        if self.errno == 0 {
            return decode(cmd, &self.body).map_err(|e| OpteError::Io {
                errno: errno::EPROTO,
                what: error_text(&format!("cannot decode the driver's {cmd} reply: {e}")),
            });
        }
        if self.errno == errno::ENOBUFS && self.body.is_empty() {
            return Err(OpteError::ReplyTooLarge { needed: self.hdr.resp_len_needed });
        }
        if !self.body.is_empty()
            && let Ok(e) = decode::<OpteError>(cmd, &self.body)
        {
            return Err(e);
        }
        Err(OpteError::from_errno(self.errno, cmd))
    }
}

/// A handle on the driver.
#[derive(Debug, Clone)]
pub struct OpteHdl {
    endpoint: Endpoint,
}

impl OpteHdl {
    /// A handle on the driver at `endpoint` (nothing is opened until a
    /// command is sent).
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint }
    }

    /// A handle on the driver named by `--ctl` or the defaults (see
    /// [`Endpoint::resolve`]).
    pub fn open(ctl: Option<&Path>) -> Self {
        Self::new(Endpoint::resolve(ctl))
    }

    /// Where the driver is.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Run `cmd` with request `req`; the reply, or why it failed.
    pub fn call<Req, Resp>(&self, cmd: OpteCmd, req: &Req) -> Result<Resp, OpteError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let body = encode(req)?;
        if body.len() as u64 > MAX_REQ_LEN {
            return Err(OpteError::RequestTooLarge { len: body.len() as u64, max: MAX_REQ_LEN });
        }
        let mut hdr = OpteCmdIoctl::new(cmd, body.len() as u64, MIN_RESP_LEN);
        let first = self.send_raw(&hdr, &body)?;
        match first.decode(cmd) {
            Err(OpteError::ReplyTooLarge { needed })
                if needed > hdr.resp_len && needed <= MAX_RESP_LEN =>
            {
                hdr.resp_len = needed;
                self.send_raw(&hdr, &body)?.decode(cmd)
            }
            other => other,
        }
    }

    /// The driver's API version (every driver version answers this).
    pub fn api_version(&self) -> Result<u64, OpteError> {
        self.call(OpteCmd::ApiVersion, &())
    }

    /// This client's API version.
    pub const fn client_api_version() -> u64 {
        API_VERSION
    }

    /// Send `hdr` and `req` exactly as given (the header's `req_len` need
    /// not match `req`), and return what came back.
    pub fn send_raw(&self, hdr: &OpteCmdIoctl, req: &[u8]) -> Result<RawReply, OpteError> {
        let cmd = OpteCmd::try_from(hdr.cmd).unwrap_or(OpteCmd::ApiVersion);
        let io = |e: io::Error, what: &str| OpteError::Io {
            errno: e.raw_os_error().unwrap_or(errno::EINVAL),
            what: error_text(&format!(
                "{what} {} for {}: {e}",
                self.endpoint.path().display(),
                cmd.name()
            )),
        };
        match &self.endpoint {
            Endpoint::Socket(p) => socket_send(p, hdr, req).map_err(|(e, w)| io(e, w)),
            Endpoint::Device(p) => device_send(p, hdr, req).map_err(|(e, w)| io(e, w)),
        }
    }
}

type SendResult = Result<RawReply, (io::Error, &'static str)>;

/// One command over an `xde-host` socket (one connection per command).
fn socket_send(path: &Path, hdr: &OpteCmdIoctl, req: &[u8]) -> SendResult {
    use std::net::Shutdown;
    use std::os::unix::net::UnixStream;

    let mut s = UnixStream::connect(path).map_err(|e| (e, "cannot connect to"))?;
    s.set_read_timeout(Some(SOCKET_TIMEOUT)).map_err(|e| (e, "cannot set a timeout on"))?;
    s.set_write_timeout(Some(SOCKET_TIMEOUT)).map_err(|e| (e, "cannot set a timeout on"))?;
    // A server that refuses a request early (too large, not allowed)
    // answers without reading it all and the write fails; its answer is
    // still there to read.
    let sent = frame::write_request(&mut s, hdr, req);
    let _ = s.shutdown(Shutdown::Write);
    let max_body = hdr.resp_len.max(MIN_RESP_LEN);
    match frame::read_reply(&mut s, max_body) {
        Ok((hdr, errno, body)) => Ok(RawReply { hdr, errno, body }),
        Err(e) => match sent {
            Err(w) => Err((w, "cannot send to")),
            Ok(()) => Err((e, "no reply from")),
        },
    }
}

#[cfg(not(target_os = "illumos"))]
fn device_send(_: &Path, _: &OpteCmdIoctl, _: &[u8]) -> SendResult {
    Err((io::Error::from_raw_os_error(errno::ENOTSUP), "no xde device on this system:"))
}

/// One command as an ioctl on `/dev/xde`.
#[cfg(target_os = "illumos")]
fn device_send(path: &Path, hdr: &OpteCmdIoctl, req: &[u8]) -> SendResult {
    use std::fs::OpenOptions;
    use std::os::fd::AsRawFd;

    let dev =
        OpenOptions::new().read(true).write(true).open(path).map_err(|e| (e, "cannot open"))?;
    let cap = usize::try_from(hdr.resp_len.min(MAX_RESP_LEN))
        .map_err(|_| (io::Error::from_raw_os_error(errno::E2BIG), "reply buffer too large for"))?;
    let mut resp = vec![0u8; cap];
    let mut h = *hdr;
    h.req_ptr = req.as_ptr() as u64;
    h.resp_ptr = resp.as_mut_ptr() as u64;
    h.resp_len = cap as u64;
    h.resp_len_needed = 0;
    // SAFETY: `dev` is an open descriptor; `h` is a valid OpteCmdIoctl the
    // driver reads and writes for the duration of the call; `req_ptr` and
    // `resp_ptr` point at live buffers of `req_len` (as the caller gave
    // it; the driver checks it against MAX_REQ_LEN and copies in at most
    // that much) and `resp_len` bytes.
    let rc = unsafe {
        libc::ioctl(dev.as_raw_fd(), opte_api::XDE_IOC_OPTE_CMD as _, &mut h as *mut OpteCmdIoctl)
    };
    let errno = if rc == 0 { 0 } else { io::Error::last_os_error().raw_os_error().unwrap_or(0) };
    let body = if errno == opte_api::cmd::errno::ENOBUFS {
        Vec::new()
    } else {
        let n = usize::try_from(h.resp_len_needed).unwrap_or(0).min(resp.len());
        resp.truncate(n);
        resp
    };
    Ok(RawReply { hdr: h, errno, body })
}

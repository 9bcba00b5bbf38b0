//! The command contract between userland (`opteadm`, the control plane)
//! and the driver: which commands exist ([`OpteCmd`], with codes that
//! never change), the fixed wire header every command travels under
//! ([`OpteCmdIoctl`]), the size limits, the one error type every command
//! can answer ([`OpteError`]) and the postcard encoding of requests and
//! replies ([`encode`], [`decode`]).
//!
//! # Theory
//!
//! A command is a header plus two byte buffers. On illumos the header is
//! the argument of `ioctl(fd, XDE_IOC_OPTE_CMD, &hdr)` on `/dev/xde` and
//! the buffers are user memory named by `req_ptr`/`resp_ptr`; on Linux
//! the same header and buffers travel over the `xde-host` Unix socket.
//! Either way the driver's portable handler sees the header and the
//! request bytes and produces reply bytes or an [`OpteError`].
//!
//! The request and reply bodies are postcard-encoded serde types (the
//! VPC's live in `oxide_vpc::cmd`). Nothing in a body is trusted: the
//! driver checks, in order, the API version ([`API_VERSION`], which
//! changes whenever any code, body or meaning changes), the request size
//! ([`MAX_REQ_LEN`]), the command code, the flags, and then decodes and
//! validates the body before anything changes.
//!
//! # Reply protocol
//!
//! The caller says in `resp_len` how large its reply buffer is. On return
//! the driver has set `resp_len_needed`:
//!
//! - success: the reply is the first `resp_len_needed` bytes of the
//!   reply buffer;
//! - failure with [`OpteError::ReplyTooLarge`] (`ENOBUFS`): the reply
//!   needs `resp_len_needed` bytes and nothing was written. A read
//!   command changed nothing, so the caller retries once with a buffer of
//!   that size. A command that changes state is refused *before* it
//!   changes anything unless the buffer holds at least
//!   [`MIN_RESP_LEN`] bytes, so a retry never applies a change twice;
//! - any other failure: if `resp_len_needed` is not zero, the first
//!   `resp_len_needed` bytes hold the encoded [`OpteError`]; zero means
//!   only the errno is known ([`OpteError::from_errno`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::mem::{offset_of, size_of};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// The version of this contract. A driver answers a request carrying any
/// other version with [`OpteError::VersionMismatch`], except
/// [`OpteCmd::ApiVersion`], which every version answers the same way.
pub const API_VERSION: u64 = 1;

/// The largest request body a driver accepts, in bytes (2 MiB). The
/// largest single command is `set-fw-rules` with the maximum of 4096
/// firewall rules; a rule encodes to at most about 260 bytes (an IPv6
/// subnet as text and 32 port ranges), so 4096 of them take a little
/// over 1 MiB. Anything larger is refused with
/// [`OpteError::RequestTooLarge`] before it is read.
pub const MAX_REQ_LEN: u64 = 2 * 1024 * 1024;

/// The largest reply a driver produces, in bytes (64 MiB: a full V2P
/// table of a million mappings). A larger one is refused with
/// [`OpteError::ReplyTooLarge`] carrying a size above this limit, which a
/// client does not retry.
pub const MAX_RESP_LEN: u64 = 64 * 1024 * 1024;

/// The reply buffer every client should offer first, and the least a
/// command that changes state needs (its reply, or an error, fits).
pub const MIN_RESP_LEN: u64 = 4096;

/// Longest text an [`OpteError`] carries; longer text (from a request) is
/// cut, so an encoded error always fits in [`MIN_RESP_LEN`].
pub const MAX_ERROR_TEXT: usize = 512;

/// The illumos ioctl number of a command: `('x' << 24) | ('d' << 16) |
/// ('e' << 8) | 0x7f`, i.e. `0x7864_657f`. Its argument is a pointer to
/// an [`OpteCmdIoctl`].
pub const XDE_IOC_OPTE_CMD: i32 =
    (b'x' as i32) << 24 | (b'd' as i32) << 16 | (b'e' as i32) << 8 | 0x7f;

macro_rules! commands {
    ($($(#[$m:meta])* $name:ident = $code:literal, $text:literal, $changes:literal;)*) => {
        /// Every command, with its fixed numeric code. Codes are never
        /// reused or renumbered; a new command gets a new code and a new
        /// [`API_VERSION`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum OpteCmd {
            $($(#[$m])* $name = $code,)*
        }

        impl OpteCmd {
            /// Every command, in code order.
            pub const ALL: &'static [OpteCmd] = &[$(OpteCmd::$name,)*];

            /// The command's name as `opteadm` spells it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(OpteCmd::$name => $text,)*
                }
            }

            /// True for a command that changes driver state (its reply is
            /// small; see the module's reply protocol).
            pub const fn changes_state(self) -> bool {
                match self {
                    $(OpteCmd::$name => $changes,)*
                }
            }
        }

        impl TryFrom<u32> for OpteCmd {
            type Error = OpteError;

            fn try_from(v: u32) -> Result<Self, OpteError> {
                match v {
                    $($code => Ok(OpteCmd::$name),)*
                    other => Err(OpteError::UnknownCommand(other)),
                }
            }
        }
    };
}

commands! {
    /// The driver's [`API_VERSION`] (reply: `u64`). Answered whatever
    /// version the header carries.
    ApiVersion = 1, "version", false;
    /// The ports (reply: `oxide_vpc::cmd::ListPortsResp`).
    ListPorts = 2, "list-ports", false;
    /// Create a port.
    CreateXde = 3, "create-xde", true;
    /// Delete a port.
    DeleteXde = 4, "delete-xde", true;
    /// Name the underlay links.
    SetXdeUnderlay = 5, "set-xde-underlay", true;
    /// Forget the underlay links (no port may exist).
    ClearXdeUnderlay = 6, "clear-xde-underlay", true;
    /// Add one firewall rule.
    AddFwRule = 10, "add-fw-rule", true;
    /// Remove one firewall rule.
    RmFwRule = 11, "rm-fw-rule", true;
    /// Replace every firewall rule.
    SetFwRules = 12, "set-fw-rules", true;
    /// Add a route.
    AddRouterEntry = 20, "add-router-entry", true;
    /// Remove a route.
    DelRouterEntry = 21, "del-router-entry", true;
    /// Add or replace a V2P mapping.
    SetV2p = 30, "set-v2p", true;
    /// Remove a V2P mapping.
    ClearV2p = 31, "clear-v2p", true;
    /// Every V2P mapping.
    DumpV2p = 32, "dump-v2p", false;
    /// Add or replace a V2B mapping.
    SetV2b = 33, "set-v2b", true;
    /// Remove a V2B mapping.
    ClearV2b = 34, "clear-v2b", true;
    /// Every V2B mapping.
    DumpV2b = 35, "dump-v2b", false;
    /// Replace a port's external IPs.
    SetExternalIps = 40, "set-external-ips", true;
    /// Let a guest forward for a CIDR.
    AllowCidr = 41, "allow-cidr", true;
    /// Stop a guest forwarding for a CIDR.
    RemoveCidr = 42, "remove-cidr", true;
    /// Attach a subnet to a port.
    AttachSubnet = 43, "attach-subnet", true;
    /// Detach a subnet from a port.
    DetachSubnet = 44, "detach-subnet", true;
    /// Peer a port's VPC with another.
    AddPeering = 45, "add-peering", true;
    /// Stop peering with a VPC.
    RemovePeering = 46, "remove-peering", true;
    /// A port's layers.
    ListLayers = 50, "list-layers", false;
    /// One layer's rules, flow tables and counters.
    DumpLayer = 51, "dump-layer", false;
    /// A port's unified flow table.
    DumpUft = 52, "dump-uft", false;
    /// A port's TCP flows.
    DumpTcpFlows = 53, "dump-tcp-flows", false;
    /// Empty a port's unified flow table.
    ClearUft = 54, "clear-uft", true;
    /// Empty layer flow tables.
    ClearLft = 55, "clear-lft", true;
    /// A port's counters.
    Stats = 56, "stats", false;
    /// A port's whole configuration.
    DumpPort = 57, "dump-port", false;
    /// Explain one packet's path through a port without changing state.
    Trace = 58, "trace", false;
}

impl fmt::Display for OpteCmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The wire header of every command (the `ioctl` argument on illumos;
/// the first [`OpteCmdIoctl::WIRE_LEN`] bytes of a frame on the Linux
/// socket, little-endian). Its layout is fixed: see the assertions below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct OpteCmdIoctl {
    /// The [`API_VERSION`] the caller was built for.
    pub api_version: u64,
    /// The [`OpteCmd`] code.
    pub cmd: u32,
    /// Reserved: must be zero.
    pub flags: u32,
    /// The request body's user address (ioctl only; zero on the socket).
    pub req_ptr: u64,
    /// The request body's length in bytes.
    pub req_len: u64,
    /// The reply buffer's user address (ioctl only; zero on the socket).
    pub resp_ptr: u64,
    /// The reply buffer's capacity in bytes.
    pub resp_len: u64,
    /// Set by the driver (see the module's reply protocol).
    pub resp_len_needed: u64,
}

const _: () = {
    assert!(size_of::<OpteCmdIoctl>() == 56);
    assert!(offset_of!(OpteCmdIoctl, api_version) == 0);
    assert!(offset_of!(OpteCmdIoctl, cmd) == 8);
    assert!(offset_of!(OpteCmdIoctl, flags) == 12);
    assert!(offset_of!(OpteCmdIoctl, req_ptr) == 16);
    assert!(offset_of!(OpteCmdIoctl, req_len) == 24);
    assert!(offset_of!(OpteCmdIoctl, resp_ptr) == 32);
    assert!(offset_of!(OpteCmdIoctl, resp_len) == 40);
    assert!(offset_of!(OpteCmdIoctl, resp_len_needed) == 48);
};

impl OpteCmdIoctl {
    /// Bytes of the header on the wire.
    pub const WIRE_LEN: usize = 56;

    /// A header for `cmd` of this [`API_VERSION`] with a request of
    /// `req_len` bytes and a reply buffer of `resp_len` bytes (no
    /// pointers: the ioctl path fills them in).
    pub const fn new(cmd: OpteCmd, req_len: u64, resp_len: u64) -> Self {
        Self {
            api_version: API_VERSION,
            cmd: cmd as u32,
            flags: 0,
            req_ptr: 0,
            req_len,
            resp_ptr: 0,
            resp_len,
            resp_len_needed: 0,
        }
    }

    /// The header as little-endian bytes in field order.
    pub fn to_bytes(&self) -> [u8; Self::WIRE_LEN] {
        let mut b = [0u8; Self::WIRE_LEN];
        let fields: [&[u8]; 8] = [
            &self.api_version.to_le_bytes(),
            &self.cmd.to_le_bytes(),
            &self.flags.to_le_bytes(),
            &self.req_ptr.to_le_bytes(),
            &self.req_len.to_le_bytes(),
            &self.resp_ptr.to_le_bytes(),
            &self.resp_len.to_le_bytes(),
            &self.resp_len_needed.to_le_bytes(),
        ];
        let mut at = 0;
        for f in fields {
            if let Some(dst) = b.get_mut(at..at + f.len()) {
                dst.copy_from_slice(f);
            }
            at += f.len();
        }
        b
    }

    /// The header from its little-endian bytes.
    pub fn from_bytes(b: &[u8; Self::WIRE_LEN]) -> Self {
        Self {
            api_version: le64(b, 0),
            cmd: le32(b, 8),
            flags: le32(b, 12),
            req_ptr: le64(b, 16),
            req_len: le64(b, 24),
            resp_ptr: le64(b, 32),
            resp_len: le64(b, 40),
            resp_len_needed: le64(b, 48),
        }
    }
}

/// The little-endian `u64` at `at` (zero past the end).
fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

/// The little-endian `u32` at `at` (zero past the end).
fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

/// errno values as the target's C library defines them (illumos and
/// Linux agree on all but `ENOTSUP` and `ENOBUFS`).
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such file or directory (no such port, rule, mapping).
    pub const ENOENT: i32 = 2;
    /// No such device or address (no underlay).
    pub const ENXIO: i32 = 6;
    /// Argument list too long (request too large).
    pub const E2BIG: i32 = 7;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// File exists.
    pub const EEXIST: i32 = 17;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// No space left on device (a table at its limit).
    pub const ENOSPC: i32 = 28;
    /// Protocol error (API version mismatch).
    pub const EPROTO: i32 = 71;
    /// Operation not supported.
    #[cfg(target_os = "illumos")]
    pub const ENOTSUP: i32 = 48;
    /// Operation not supported.
    #[cfg(not(target_os = "illumos"))]
    pub const ENOTSUP: i32 = 95;
    /// No buffer space available (reply too large).
    #[cfg(target_os = "illumos")]
    pub const ENOBUFS: i32 = 132;
    /// No buffer space available (reply too large).
    #[cfg(not(target_os = "illumos"))]
    pub const ENOBUFS: i32 = 105;
}

/// Why a command failed. Every variant reads as a message (`Display`)
/// and maps to an errno ([`OpteError::errno`]). Nothing changed when a
/// command fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpteError {
    /// The caller and the driver speak different [`API_VERSION`]s.
    VersionMismatch {
        /// The version the request carried.
        client: u64,
        /// The driver's version.
        driver: u64,
    },
    /// No command has this code.
    UnknownCommand(u32),
    /// Flags the driver does not know.
    BadFlags(u32),
    /// The request is larger than [`MAX_REQ_LEN`].
    RequestTooLarge {
        /// The request's length.
        len: u64,
        /// [`MAX_REQ_LEN`].
        max: u64,
    },
    /// The reply does not fit the caller's buffer; it needs this many
    /// bytes (see the module's reply protocol).
    ReplyTooLarge {
        /// Bytes the reply needs.
        needed: u64,
    },
    /// The request could not be decoded.
    Malformed {
        /// The command it was for.
        cmd: String,
        /// What is wrong.
        why: String,
    },
    /// No port has this name.
    NoSuchPort(String),
    /// A port with this name already exists.
    PortExists(String),
    /// A port or link name that is not a valid illumos link name.
    BadName {
        /// The name (cut to [`MAX_ERROR_TEXT`]).
        name: String,
        /// What is wrong.
        why: String,
    },
    /// The driver has as many ports as it allows.
    TooManyPorts {
        /// The limit.
        max: u32,
    },
    /// Ports need the underlay links to be set first.
    NoUnderlay,
    /// The underlay cannot change while ports use it.
    UnderlayInUse {
        /// Ports that exist.
        ports: u32,
    },
    /// The request names something that does not exist (a rule, a
    /// route, a mapping, a layer).
    NotFound(String),
    /// The request adds something that already exists.
    Exists(String),
    /// The request is well-formed but its values are refused (a bad
    /// configuration, a rule the engine refuses).
    Invalid(String),
    /// A table is at its limit.
    TableFull(String),
    /// The operation is not allowed in the current state.
    Busy(String),
    /// The driver does not support this.
    NotSupported(String),
    /// The caller may not issue commands.
    PermissionDenied(String),
    /// The transport failed (could not open the device or socket, a
    /// short write); carries the errno.
    Io {
        /// The errno.
        errno: i32,
        /// What failed.
        what: String,
    },
}

/// `s` cut to at most [`MAX_ERROR_TEXT`] bytes, on a character boundary.
pub fn error_text(s: &str) -> String {
    let mut end = s.len().min(MAX_ERROR_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    String::from(s.get(..end).unwrap_or(""))
}

impl OpteError {
    /// The errno a failed `ioctl` returns for this error.
    pub fn errno(&self) -> i32 {
        use errno::*;
        match self {
            Self::VersionMismatch { .. } => EPROTO,
            Self::UnknownCommand(_) => ENOTSUP,
            Self::BadFlags(_) | Self::Malformed { .. } | Self::BadName { .. } => EINVAL,
            Self::Invalid(_) => EINVAL,
            Self::RequestTooLarge { .. } => E2BIG,
            Self::ReplyTooLarge { .. } => ENOBUFS,
            Self::NoSuchPort(_) | Self::NotFound(_) => ENOENT,
            Self::PortExists(_) | Self::Exists(_) => EEXIST,
            Self::TooManyPorts { .. } | Self::TableFull(_) => ENOSPC,
            Self::NoUnderlay => ENXIO,
            Self::UnderlayInUse { .. } | Self::Busy(_) => EBUSY,
            Self::NotSupported(_) => ENOTSUP,
            Self::PermissionDenied(_) => EPERM,
            Self::Io { errno, .. } => *errno,
        }
    }

    /// The error for a bare errno (a driver that wrote no error body).
    pub fn from_errno(e: i32, cmd: OpteCmd) -> Self {
        Self::Io { errno: e, what: alloc::format!("{cmd} failed with errno {e}") }
    }

    /// A decode failure of `cmd`'s request.
    pub fn malformed(cmd: OpteCmd, why: impl fmt::Display) -> Self {
        Self::Malformed { cmd: String::from(cmd.name()), why: error_text(&alloc::format!("{why}")) }
    }
}

impl fmt::Display for OpteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VersionMismatch { client, driver } => write!(
                f,
                "API version mismatch: the client speaks version {client}, the driver version {driver}"
            ),
            Self::UnknownCommand(c) => write!(f, "unknown command code {c}"),
            Self::BadFlags(x) => write!(f, "unknown command flags {x:#x}"),
            Self::RequestTooLarge { len, max } => {
                write!(f, "request of {len} bytes is larger than the limit of {max} bytes")
            }
            Self::ReplyTooLarge { needed } => {
                write!(f, "reply of {needed} bytes does not fit the reply buffer")
            }
            Self::Malformed { cmd, why } => write!(f, "malformed {cmd} request: {why}"),
            Self::NoSuchPort(p) => write!(f, "no such port: {p}"),
            Self::PortExists(p) => write!(f, "port {p} already exists"),
            Self::BadName { name, why } => write!(f, "bad name {name:?}: {why}"),
            Self::TooManyPorts { max } => write!(f, "too many ports (the limit is {max})"),
            Self::NoUnderlay => f.write_str("the underlay is not set (run set-xde-underlay first)"),
            Self::UnderlayInUse { ports } => {
                write!(f, "the underlay is in use by {ports} port(s); delete them first")
            }
            Self::NotFound(s)
            | Self::Exists(s)
            | Self::Invalid(s)
            | Self::TableFull(s)
            | Self::Busy(s)
            | Self::NotSupported(s) => f.write_str(s),
            Self::PermissionDenied(s) => write!(f, "permission denied: {s}"),
            Self::Io { what, .. } => f.write_str(what),
        }
    }
}

impl core::error::Error for OpteError {}

/// Encode a request or reply body.
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, OpteError> {
    postcard::to_allocvec(v).map_err(|e| OpteError::Io {
        errno: errno::EINVAL,
        what: error_text(&alloc::format!("cannot encode: {e}")),
    })
}

/// What a postcard decoding error means for a person.
fn decode_error_text(e: postcard::Error) -> &'static str {
    use postcard::Error as E;
    match e {
        E::DeserializeUnexpectedEnd => "the body ends too early",
        E::DeserializeBadVarint => "a number is badly encoded",
        E::DeserializeBadBool => "a flag is neither true nor false",
        E::DeserializeBadChar | E::DeserializeBadUtf8 => "a text is not UTF-8",
        E::DeserializeBadOption => "an optional value is badly encoded",
        E::DeserializeBadEnum => "a choice is none of the known ones",
        // Our own checks while decoding (an address, a VNI, a list
        // longer than its limit); postcard keeps no message.
        E::SerdeDeCustom => {
            "a value was refused (a malformed address or CIDR, a VNI above 24 bits, or a list longer than its limit)"
        }
        _ => "the body is not a valid encoding",
    }
}

/// Decode `cmd`'s request or reply body: every byte must be used.
pub fn decode<T: DeserializeOwned>(cmd: OpteCmd, bytes: &[u8]) -> Result<T, OpteError> {
    let (v, rest) = postcard::take_from_bytes(bytes)
        .map_err(|e| OpteError::malformed(cmd, decode_error_text(e)))?;
    if !rest.is_empty() {
        return Err(OpteError::malformed(
            cmd,
            alloc::format!("{} trailing byte(s) after the body", rest.len()),
        ));
    }
    Ok(v)
}

/// Deserialize a `Vec` of at most `MAX` elements, refusing a longer one
/// as soon as element `MAX + 1` appears (so a request cannot make the
/// decoder allocate past the limit). For `#[serde(deserialize_with =
/// "opte_api::cmd::bounded_vec::<_, _, N>")]`.
pub fn bounded_vec<'de, D, T, const MAX: usize>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T, const MAX: usize>(core::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>, const MAX: usize> serde::de::Visitor<'de> for V<T, MAX> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX} elements")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let hint = seq.size_hint().unwrap_or(0);
            if hint > MAX {
                return Err(serde::de::Error::custom(format_args!(
                    "a list of {hint} elements is longer than the limit of {MAX}"
                )));
            }
            let mut v = Vec::with_capacity(hint.min(64));
            while let Some(x) = seq.next_element()? {
                if v.len() >= MAX {
                    return Err(serde::de::Error::custom(format_args!(
                        "a list longer than the limit of {MAX}"
                    )));
                }
                v.push(x);
            }
            Ok(v)
        }
    }

    d.deserialize_seq(V::<T, MAX>(core::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_names_are_unique() {
        for c in OpteCmd::ALL {
            assert_eq!(OpteCmd::try_from(*c as u32), Ok(*c));
            assert_eq!(OpteCmd::ALL.iter().filter(|d| d.name() == c.name()).count(), 1);
        }
        assert_eq!(OpteCmd::try_from(0), Err(OpteError::UnknownCommand(0)));
        assert_eq!(OpteCmd::try_from(9999), Err(OpteError::UnknownCommand(9999)));
    }

    #[test]
    fn header_bytes_round_trip_in_field_order() {
        let h = OpteCmdIoctl {
            api_version: 0x0102_0304_0506_0708,
            cmd: 0x1112_1314,
            flags: 0x2122_2324,
            req_ptr: 3,
            req_len: 4,
            resp_ptr: 5,
            resp_len: 6,
            resp_len_needed: 7,
        };
        let b = h.to_bytes();
        assert_eq!(b[0], 0x08);
        assert_eq!(b[8], 0x14);
        assert_eq!(b[12], 0x24);
        assert_eq!(b[48], 7);
        assert_eq!(OpteCmdIoctl::from_bytes(&b), h);
    }

    #[test]
    fn ioctl_number_spells_xde() {
        assert_eq!(XDE_IOC_OPTE_CMD, 0x7864_657f);
    }

    #[test]
    fn decode_refuses_trailing_bytes() {
        let mut b = encode(&7u64).unwrap();
        assert_eq!(decode::<u64>(OpteCmd::ApiVersion, &b), Ok(7));
        b.push(0);
        let e = decode::<u64>(OpteCmd::ApiVersion, &b).unwrap_err();
        assert!(e.to_string().contains("trailing"), "{e}");
        assert_eq!(e.errno(), errno::EINVAL);
    }

    #[test]
    fn version_mismatch_names_both_versions() {
        let e = OpteError::VersionMismatch { client: 9, driver: API_VERSION };
        let m = e.to_string();
        assert!(m.contains('9') && m.contains(&API_VERSION.to_string()), "{m}");
        assert_eq!(e.errno(), errno::EPROTO);
    }

    #[test]
    fn error_text_is_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_ERROR_TEXT);
        let cut = error_text(&long);
        assert!(cut.len() <= MAX_ERROR_TEXT && cut.chars().all(|c| c == 'é'));
    }
}

//! STREAMS message buffers: `mblk_t` (msgb), `dblk_t` (datab) and the
//! buffer functions of `allocb(9F)`, `freeb(9F)`, `dupb(9F)` and friends,
//! plus the hardware checksum and LSO offload flags a MAC client reads
//! and sets on a packet's first dblk (`mac_hcksum_get(9F)`).
//!
//! A packet is a chain of `mblk_t`s linked by `b_cont`; each one's bytes
//! are `b_rptr..b_wptr`, inside its dblk's `db_base..db_lim`. Packets are
//! listed by `b_next`. A dblk may be shared by several mblks (`dupb`); its
//! `db_ref` counts them, and a shared dblk's bytes must not be written.

use crate::{intptr_t, pid_t, size_t, ssize_t, uint_t};
use core::ffi::{c_int, c_void};
use core::mem::{offset_of, size_of};

/// Opaque STREAMS queue (`queue_t`); we only carry pointers to it.
#[repr(C)]
pub struct queue_t {
    _opaque: [u8; 0],
}

/// Opaque credential (`cred_t`).
#[repr(C)]
pub struct cred_t {
    _opaque: [u8; 0],
}

/// Opaque flow-trace header (`struct fthdr`).
#[repr(C)]
pub struct fthdr_t {
    _opaque: [u8; 0],
}

/// The free routine of an `esballoc(9F)` buffer (`frtn_t`).
#[repr(C)]
pub struct frtn_t {
    pub free_func: Option<unsafe extern "C" fn(arg: *mut c_void)>,
    pub free_arg: *mut c_void,
}

/// Message block descriptor (`struct msgb`, `mblk_t`).
#[repr(C)]
pub struct mblk_t {
    /// Next message in a list of packets.
    pub b_next: *mut mblk_t,
    /// Previous message in a list (used by queues).
    pub b_prev: *mut mblk_t,
    /// Next block of this message (the rest of the packet).
    pub b_cont: *mut mblk_t,
    /// First unread byte of this block.
    pub b_rptr: *mut u8,
    /// One past the last written byte of this block.
    pub b_wptr: *mut u8,
    /// The data block holding the bytes.
    pub b_datap: *mut dblk_t,
    pub b_band: u8,
    pub b_tag: u8,
    pub b_flag: u16,
    pub b_queue: *mut queue_t,
}

/// The checksum/offload member of `db_struioun`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct dblk_cksum_t {
    /// Hardware-computed checksum (`db_cksum16`/`db_cksum32`).
    pub cksum_val: u32,
    /// `HCK_*` and `HW_LSO` flags (`DB_CKSUMFLAGS`, `DB_LSOFLAGS`).
    pub flags: u16,
    /// VLAN TCI (GLDv2) or LSO MSS (`DB_LSOMSS`).
    pub pad: u16,
}

/// `db_struioun`: an 8-byte union, 8-byte aligned.
#[repr(C)]
#[derive(Clone, Copy)]
pub union dblk_struioun_t {
    pub enforce_alignment: f64,
    pub data: [u8; 8],
    pub cksum: dblk_cksum_t,
}

/// Data block descriptor (`struct datab`, `dblk_t`). Only `db_base`,
/// `db_lim`, `db_ref` and `db_type` are public DDI fields; the rest is
/// laid out so offsets match the kernel's.
#[repr(C)]
pub struct dblk_t {
    pub db_frtnp: *mut frtn_t,
    /// First byte of the buffer.
    pub db_base: *mut u8,
    /// One past the last byte of the buffer.
    pub db_lim: *mut u8,
    /// Number of mblks referring to this dblk.
    pub db_ref: u8,
    /// Message type (`M_DATA`, ...).
    pub db_type: u8,
    pub db_flags: u8,
    pub db_struioflag: u8,
    pub db_cpid: pid_t,
    pub db_cache: *mut c_void,
    /// The mblk this dblk was allocated with.
    pub db_mblk: *mut mblk_t,
    pub db_free: Option<unsafe extern "C" fn(*mut mblk_t, *mut dblk_t)>,
    pub db_lastfree: Option<unsafe extern "C" fn(*mut mblk_t, *mut dblk_t)>,
    /// Offload: where the partial checksum starts (from `b_rptr`).
    pub db_cksumstart: intptr_t,
    /// Offload: where the partial checksum ends.
    pub db_cksumend: intptr_t,
    /// Offload: where the NIC stores the checksum.
    pub db_cksumstuff: intptr_t,
    pub db_struioun: dblk_struioun_t,
    pub db_fthdr: *mut fthdr_t,
    pub db_credp: *mut cred_t,
}

/// Largest `db_ref` a dblk can hold.
pub const DBLK_REFMAX: u8 = 255;

/// Regular data (`db_type`).
pub const M_DATA: u8 = 0x00;

/// `allocb(9F)` priorities (ignored by modern illumos, still part of the API).
pub const BPRI_LO: uint_t = 1;
pub const BPRI_MED: uint_t = 2;
pub const BPRI_HI: uint_t = 3;

// Hardware checksum flags (sys/pattr.h), kept in the first dblk's
// `db_struioun.cksum.flags`.
/// Tx: compute the IPv4 header checksum. Rx: IPv4 header checksum verified.
pub const HCK_IPV4_HDRCKSUM: u16 = 0x01;
/// Tx: finish a partial ones'-complement checksum from start/stuff/end.
/// Rx: a partial checksum was computed and attached.
pub const HCK_PARTIALCKSUM: u16 = 0x02;
/// Tx: compute the full L4 checksum (pseudo-header + header + payload).
/// Rx: the full checksum was computed and attached.
pub const HCK_FULLCKSUM: u16 = 0x04;
/// Rx: the full checksum was verified correct.
pub const HCK_FULLCKSUM_OK: u16 = 0x08;
/// All checksum offload flags.
pub const HCK_FLAGS: u16 = HCK_IPV4_HDRCKSUM | HCK_PARTIALCKSUM | HCK_FULLCKSUM | HCK_FULLCKSUM_OK;
/// Tx: the hardware segments this packet (LSO); MSS in `cksum.pad`.
pub const HW_LSO: u16 = 0x10;
/// All LSO flags.
pub const HW_LSO_FLAGS: u16 = HW_LSO;

unsafe extern "C" {
    /// Allocate a message block with a `size`-byte buffer; NULL on failure.
    pub fn allocb(size: size_t, pri: uint_t) -> *mut mblk_t;
    /// Free one message block (and its dblk when the last reference goes).
    pub fn freeb(mp: *mut mblk_t);
    /// Free every block of a message (`b_cont` chain).
    pub fn freemsg(mp: *mut mblk_t);
    /// Free every message of a `b_next` list.
    pub fn freemsgchain(mp: *mut mblk_t);
    /// A new mblk sharing `mp`'s dblk (reference counted); NULL on failure.
    pub fn dupb(mp: *mut mblk_t) -> *mut mblk_t;
    /// `dupb` of every block of a message; NULL on failure.
    pub fn dupmsg(mp: *mut mblk_t) -> *mut mblk_t;
    /// A new block holding a private copy of `mp`'s buffer; NULL on failure.
    /// Offload (checksum/LSO) fields are not copied.
    pub fn copyb(mp: *mut mblk_t) -> *mut mblk_t;
    /// `copyb` of every block of a message; NULL on failure.
    pub fn copymsg(mp: *mut mblk_t) -> *mut mblk_t;
    /// A new message whose first block is a copy of *all* the leading blocks
    /// that share `mp`'s `db_type` (whatever `len` is), followed by a `dupmsg`
    /// of the blocks after them; `mp` is unchanged. NULL if `len > 0` and those
    /// blocks hold fewer than `len` bytes, or on allocation failure. Offload
    /// (checksum/LSO) fields are not copied; see `mac_hcksum_clone`.
    pub fn msgpullup(mp: *mut mblk_t, len: ssize_t) -> *mut mblk_t;
    /// Make the first `len` bytes (`-1`: all) contiguous in `mp`'s first
    /// block, in place. Returns 1 on success, 0 on failure (message too short,
    /// or no memory) with `mp` unchanged. When it copies, `mp` gets a new dblk
    /// whose offload (checksum/LSO) fields are zero.
    pub fn pullupmsg(mp: *mut mblk_t, len: ssize_t) -> c_int;
    /// Bytes in all blocks of a message.
    pub fn msgsize(mp: *mut mblk_t) -> size_t;
}

// Layout pins (amd64, LP64): these must match the illumos kernel.
const _: () = {
    assert!(size_of::<mblk_t>() == 64);
    assert!(offset_of!(mblk_t, b_next) == 0);
    assert!(offset_of!(mblk_t, b_prev) == 8);
    assert!(offset_of!(mblk_t, b_cont) == 16);
    assert!(offset_of!(mblk_t, b_rptr) == 24);
    assert!(offset_of!(mblk_t, b_wptr) == 32);
    assert!(offset_of!(mblk_t, b_datap) == 40);
    assert!(offset_of!(mblk_t, b_band) == 48);
    assert!(offset_of!(mblk_t, b_tag) == 49);
    assert!(offset_of!(mblk_t, b_flag) == 50);
    assert!(offset_of!(mblk_t, b_queue) == 56);

    assert!(size_of::<dblk_struioun_t>() == 8);
    assert!(offset_of!(dblk_cksum_t, cksum_val) == 0);
    assert!(offset_of!(dblk_cksum_t, flags) == 4);
    assert!(offset_of!(dblk_cksum_t, pad) == 6);

    assert!(size_of::<dblk_t>() == 112);
    assert!(offset_of!(dblk_t, db_frtnp) == 0);
    assert!(offset_of!(dblk_t, db_base) == 8);
    assert!(offset_of!(dblk_t, db_lim) == 16);
    assert!(offset_of!(dblk_t, db_ref) == 24);
    assert!(offset_of!(dblk_t, db_type) == 25);
    assert!(offset_of!(dblk_t, db_flags) == 26);
    assert!(offset_of!(dblk_t, db_struioflag) == 27);
    assert!(offset_of!(dblk_t, db_cpid) == 28);
    assert!(offset_of!(dblk_t, db_cache) == 32);
    assert!(offset_of!(dblk_t, db_mblk) == 40);
    assert!(offset_of!(dblk_t, db_free) == 48);
    assert!(offset_of!(dblk_t, db_lastfree) == 56);
    assert!(offset_of!(dblk_t, db_cksumstart) == 64);
    assert!(offset_of!(dblk_t, db_cksumend) == 72);
    assert!(offset_of!(dblk_t, db_cksumstuff) == 80);
    assert!(offset_of!(dblk_t, db_struioun) == 88);
    assert!(offset_of!(dblk_t, db_fthdr) == 96);
    assert!(offset_of!(dblk_t, db_credp) == 104);

    assert!(size_of::<frtn_t>() == 16);
};

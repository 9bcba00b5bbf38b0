//! Per-flow TCP connection state, as a middlebox that sees both directions
//! of a guest's connection infers it.
//!
//! A [`TcpFlow`] lives in every TCP flow-table entry. It reads only the
//! flags, and for FINs the sequence and acknowledgement numbers, of each
//! segment the port passes, and answers three questions for the engine:
//! how long the entry may sit idle ([`TcpFlow::expiry_class`]), when the
//! connection is over so the entry can be reclaimed or must be replaced
//! ([`TcpVerdict::Closed`], [`TcpVerdict::NewFlow`]), and how many segments
//! did not fit the connection ([`TcpFlow::errors`], an eviction preference).
//!
//! # Theory
//!
//! ## The model: the guest's TCB
//!
//! The guest is the local end. [`Direction::Out`] segments are ones the
//! guest sent; [`Direction::In`] segments are ones the guest is about to
//! receive. The state is the RFC 9293 state the guest's own TCB would be
//! in, had it sent every Out segment and processed every In segment in the
//! order the port saw them. A guest that sends a SYN does an active open
//! (SYN-SENT); a SYN arriving for the guest is a passive open.
//!
//! One state has a narrower meaning than in the RFC: [`TcpState::Listen`]
//! is "a peer's SYN has arrived and the guest has not answered yet". The
//! port cannot see a listening socket, only the guest's answer, which is a
//! SYN-ACK (accepted: [`TcpState::SynRcvd`]) or a RST (refused: closed).
//!
//! When both ends act within one transit time the port's order can differ
//! from the guest's (a FIN from each side crossing at the port). The model
//! then reports a neighbouring closing state (LAST-ACK rather than
//! CLOSING); the expiry class is the same, and at worst the entry is
//! reclaimed one segment early and rejoined (see "Joining mid-stream").
//!
//! ## Segment kinds
//!
//! Each segment is one of these, by its flags alone:
//!
//! - malformed: SYN with FIN or RST, or none of SYN, RST and ACK (a bare
//!   FIN, data without ACK, no flags at all). No TCP sends these on a live
//!   connection and a receiving TCP discards them, so they never move the
//!   state: unexpected in every state.
//! - RST: the connection is over, whoever sent it, in every state.
//! - SYN (without ACK), SYN-ACK: the handshake.
//! - ACK, FIN-ACK: everything else; a FIN-ACK is processed as the RFC
//!   does, acknowledgement first and then the FIN.
//!
//! Sequence numbers are not checked against windows: the two TCP stacks
//! do that, and a middlebox that second-guesses them breaks connections.
//! The cost is that a forged RST reclaims the entry; the connection's next
//! segment joins a fresh entry (see below).
//!
//! ## Transitions
//!
//! `o` is a segment from the guest (Out), `i` one for the guest (In),
//! `*` either. Anything not listed is unexpected: the state stays, the
//! error count grows. An RST from either side in any state gives
//! [`TcpVerdict::Closed`] and leaves the flow in CLOSED.
//!
//! ```text
//! state         segment                  next state / verdict
//! CLOSED        * SYN                    NewFlow (fresh flow from this SYN)
//! LISTEN        i SYN                    LISTEN (retransmission)
//!               o SYN                    SYN-RCVD (simultaneous open)
//!               o SYN-ACK                SYN-RCVD
//! SYN-SENT      o SYN                    SYN-SENT (retransmission)
//!               i SYN                    SYN-RCVD (simultaneous open)
//!               i SYN-ACK                ESTABLISHED
//! SYN-RCVD      * SYN, o SYN-ACK         SYN-RCVD (retransmissions, or
//!                                        the other half of a simultaneous open)
//!               i SYN-ACK, i ACK         ESTABLISHED
//!               i FIN-ACK                CLOSE-WAIT (ESTABLISHED, then the FIN)
//!               o FIN-ACK                FIN-WAIT-1 (close before established)
//! ESTABLISHED   * ACK                    ESTABLISHED
//!               o FIN-ACK                FIN-WAIT-1
//!               i FIN-ACK                CLOSE-WAIT
//! FIN-WAIT-1    i ACK of the guest's FIN FIN-WAIT-2
//!               i FIN-ACK acking it      TIME-WAIT
//!               i FIN-ACK not acking it  CLOSING (simultaneous close)
//!               other ACK, o FIN-ACK     FIN-WAIT-1
//! FIN-WAIT-2    i FIN-ACK                TIME-WAIT
//!               * ACK, o FIN-ACK         FIN-WAIT-2
//! CLOSE-WAIT    o FIN-ACK                LAST-ACK
//!               * ACK, i FIN-ACK         CLOSE-WAIT
//! CLOSING       i ACK/FIN-ACK acking the
//!                 guest's FIN            TIME-WAIT
//!               other ACK, FIN-ACK       CLOSING
//! LAST-ACK      i ACK/FIN-ACK acking the
//!                 guest's FIN            Closed (the connection is over)
//!               other ACK, FIN-ACK       LAST-ACK
//! TIME-WAIT     * SYN                    NewFlow (fresh flow from this SYN)
//!               * ACK, * FIN-ACK         TIME-WAIT
//! ESTABLISHED   * SYN-ACK from a side    unchanged (a retransmitted
//!  to LAST-ACK    whose SYN was seen     handshake segment whose ACK was lost)
//! ```
//!
//! A FIN-ACK from a side whose FIN the state already records is a
//! retransmission and changes nothing. TIME-WAIT does not reclaim the
//! entry: the guest's last ACK may be lost, and the peer's retransmitted
//! FIN and the guest's answer must still find the entry (and its NAT
//! mapping). The entry leaves by expiry, or a new SYN replaces it.
//!
//! ## The ACK of the guest's FIN
//!
//! Only the guest's FIN is tracked, because only its acknowledgement moves
//! the guest's state (FIN-WAIT-1, CLOSING and LAST-ACK wait for it); the
//! guest acknowledging the peer's FIN changes nothing in the guest's TCB.
//! A FIN occupies the sequence number after the segment's payload, which
//! a [`TcpHdr`] alone does not tell. The flow therefore records the
//! sequence number of the segment that carried the FIN (the greatest one,
//! over retransmissions) and counts an In ACK as acknowledging the FIN
//! when its acknowledgement number lies after that. This is exact for a
//! FIN without payload. For a FIN carried on data it also accepts an ACK
//! that covers only part of that data (possible when a large LSO segment
//! carrying the FIN is split on the wire); the consequence is bounded: the
//! state advances one step early among the closing states (same expiry
//! class), or, from LAST-ACK, the entry is reclaimed early and the
//! connection's remaining segments join a fresh entry.
//!
//! ## Joining mid-stream
//!
//! A flow entry can be created by a segment that is not a SYN: the flow
//! table was reset, or an entry expired, in the middle of a connection. So
//! that the port does not break connections it joins late,
//! [`TcpFlow::new`] takes the state the segment implies, with no error:
//!
//! ```text
//! first segment   state
//! o SYN           SYN-SENT
//! i SYN           LISTEN
//! o SYN-ACK       SYN-RCVD     (the guest answering a SYN not seen)
//! i SYN-ACK       ESTABLISHED  (as from SYN-SENT)
//! * ACK           ESTABLISHED
//! o FIN-ACK       FIN-WAIT-1   (as from ESTABLISHED)
//! i FIN-ACK       CLOSE-WAIT   (as from ESTABLISHED)
//! * RST           CLOSED       (nothing to keep; no error)
//! malformed       CLOSED       (one error)
//! ```
//!
//! Whether such an entry may be created at all (an inbound ACK for an
//! unknown connection) is the firewall's decision, not this module's.
//!
//! ## Unexpected segments are passed
//!
//! [`TcpVerdict::Unexpected`] asks the caller to pass the segment and
//! count it (the port's `TcpError`); there are no exceptions, malformed
//! flag combinations included. The endpoints discard what does not fit
//! their state; a middlebox that dropped such segments would break
//! connections whose start it did not see, and gains nothing. The count
//! ([`TcpFlow::errors`]) lets a full flow table prefer to evict flows that
//! misbehave.
//!
//! ## Expiry
//!
//! CLOSED and every state after a FIN (FIN-WAIT-1 to TIME-WAIT) are
//! [`ExpiryClass::TcpClosing`]; LISTEN, SYN-SENT and SYN-RCVD are
//! [`ExpiryClass::TcpIncipient`]; ESTABLISHED is
//! [`ExpiryClass::TcpEstablished`]. A half-closed connection that still
//! carries data (CLOSE-WAIT, FIN-WAIT-2) keeps its entry alive through
//! traffic; only an idle one expires on the shorter closing timeout, and
//! if it speaks again it joins a fresh entry.

use super::{Direction, ExpiryClass};
use crate::packet::TcpHdr;
use crate::packet::tcp::tcp_flags;
use core::fmt;

/// The state of a TCP connection from the guest's point of view (RFC 9293
/// names; see the module documentation for how each is reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// No connection: reset, finished, or never started.
    Closed,
    /// A peer's SYN has arrived for the guest, which has not answered yet.
    Listen,
    /// The guest sent a SYN (active open) and has no answer yet.
    SynSent,
    /// The guest answered a SYN (passive open), or both ends sent SYNs
    /// (simultaneous open); waiting for the peer to acknowledge the
    /// guest's SYN.
    SynRcvd,
    /// The handshake is complete; data flows both ways.
    Established,
    /// The guest sent a FIN that the peer has not acknowledged yet.
    FinWait1,
    /// The peer acknowledged the guest's FIN; the peer may still send.
    FinWait2,
    /// The peer sent a FIN first; the guest may still send.
    CloseWait,
    /// Both ends sent FINs, the peer's before it acknowledged the guest's
    /// (simultaneous close); waiting for that acknowledgement.
    Closing,
    /// The peer closed first and the guest has sent its FIN; waiting for
    /// the peer to acknowledge it.
    LastAck,
    /// The guest closed first and both FINs are acknowledged as far as the
    /// guest is concerned; the entry stays until it expires so that
    /// retransmitted FINs still find it.
    TimeWait,
}

impl TcpState {
    /// The RFC 9293 name of the state, as flow listings print it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Closed => "CLOSED",
            Self::Listen => "LISTEN",
            Self::SynSent => "SYN-SENT",
            Self::SynRcvd => "SYN-RECEIVED",
            Self::Established => "ESTABLISHED",
            Self::FinWait1 => "FIN-WAIT-1",
            Self::FinWait2 => "FIN-WAIT-2",
            Self::CloseWait => "CLOSE-WAIT",
            Self::Closing => "CLOSING",
            Self::LastAck => "LAST-ACK",
            Self::TimeWait => "TIME-WAIT",
        }
    }

    /// True in the states that follow a completed handshake, up to (not
    /// including) TIME-WAIT: the states in which a SYN-ACK can still be a
    /// retransmission of the handshake.
    const fn is_synchronized_open(self) -> bool {
        matches!(
            self,
            Self::Established
                | Self::FinWait1
                | Self::FinWait2
                | Self::CloseWait
                | Self::Closing
                | Self::LastAck
        )
    }

    /// True when the guest has sent a FIN.
    const fn guest_fin_sent(self) -> bool {
        matches!(
            self,
            Self::FinWait1 | Self::FinWait2 | Self::Closing | Self::LastAck | Self::TimeWait
        )
    }

    /// True when the peer has sent a FIN.
    const fn peer_fin_sent(self) -> bool {
        matches!(self, Self::CloseWait | Self::Closing | Self::LastAck | Self::TimeWait)
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one segment did to a flow ([`TcpFlow::process`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpVerdict {
    /// The segment fits; the state after it. Pass the segment.
    Ok(TcpState),
    /// The connection is over: an RST from either side in any state, or
    /// the peer's acknowledgement of the guest's FIN in LAST-ACK. Pass the
    /// segment; the caller may reclaim the flow entry, which is now in
    /// [`TcpState::Closed`]. (TIME-WAIT does not give this verdict: that
    /// entry leaves by expiry or by [`TcpVerdict::NewFlow`].)
    Closed,
    /// A SYN (without ACK) on a CLOSED or TIME-WAIT flow: a new connection
    /// on the same addresses and ports. The flow now holds the fresh state
    /// [`TcpFlow::new`] gives for this SYN (error count zero); the caller
    /// must treat the segment as the first of a new flow (a fresh NAT and
    /// firewall decision) before passing it.
    NewFlow,
    /// The segment does not fit the state (data before the handshake, an
    /// ACK on a flow that is CLOSED, a SYN on ESTABLISHED, a malformed flag
    /// combination); the state is unchanged and the segment is counted in
    /// [`TcpFlow::errors`]. Pass the segment, always: the endpoints discard
    /// what does not fit, and a middlebox that joined a connection late
    /// must not break it. The port counts these as `TcpError`.
    Unexpected(TcpState),
}

/// A segment, classified by its flags (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// SYN with FIN or RST, or none of SYN, RST and ACK.
    Malformed,
    /// RST (with or without ACK).
    Rst,
    /// SYN without ACK.
    Syn,
    /// SYN with ACK.
    SynAck,
    /// ACK without SYN or RST; `fin` when it also carries FIN.
    Ack { fin: bool },
}

impl Segment {
    fn of(flags: u8) -> Self {
        let has = |bit: u8| flags & bit != 0;
        let (syn, rst, ack, fin) =
            (has(tcp_flags::SYN), has(tcp_flags::RST), has(tcp_flags::ACK), has(tcp_flags::FIN));
        match (syn, rst, ack) {
            (true, true, _) => Self::Malformed,
            (true, false, _) if fin => Self::Malformed,
            (false, true, _) => Self::Rst,
            (true, false, false) => Self::Syn,
            (true, false, true) => Self::SynAck,
            (false, false, true) => Self::Ack { fin },
            (false, false, false) => Self::Malformed,
        }
    }
}

/// Bit in [`TcpFlow::syn_seen`]: the guest sent a SYN or SYN-ACK.
const SYN_FROM_GUEST: u8 = 1 << 0;
/// Bit in [`TcpFlow::syn_seen`]: the peer sent a SYN or SYN-ACK.
const SYN_FROM_PEER: u8 = 1 << 1;

/// The TCP state of one flow-table entry: a small `Copy` value, updated by
/// every segment of the connection in either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFlow {
    /// The connection's state from the guest's point of view.
    state: TcpState,
    /// Which sides have sent a SYN or SYN-ACK (`SYN_FROM_*` bits), to tell
    /// a retransmitted handshake segment from a new one.
    syn_seen: u8,
    /// The sequence number of the (latest-numbered) segment that carried
    /// the guest's FIN; meaningful when the state records a guest FIN.
    guest_fin_seq: u32,
    /// Segments that did not fit the state (saturating).
    errors: u16,
}

// A `TcpFlow` sits in every TCP flow-table entry, packed in one word
// ([`TcpFlow::pack`]): keep it small.
const _: () = assert!(core::mem::size_of::<TcpFlow>() <= 8);

impl TcpState {
    /// Every state, in the order of their numbers in a packed flow.
    pub const ALL: [TcpState; 11] = [
        TcpState::Closed,
        TcpState::Listen,
        TcpState::SynSent,
        TcpState::SynRcvd,
        TcpState::Established,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::CloseWait,
        TcpState::Closing,
        TcpState::LastAck,
        TcpState::TimeWait,
    ];
}

/// The `syn_seen` bit for segments sent in direction `dir`.
const fn syn_bit(dir: Direction) -> u8 {
    match dir {
        Direction::Out => SYN_FROM_GUEST,
        Direction::In => SYN_FROM_PEER,
    }
}

/// True when sequence number `a` lies after `b` (RFC 9293 modular
/// comparison: within half the sequence space ahead).
const fn seq_after(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < (1 << 31)
}

impl TcpFlow {
    /// A flow created by its first segment (the one that made the engine
    /// create the flow entry). A SYN starts a handshake; any other segment
    /// joins the connection mid-stream in the state it implies (see the
    /// module documentation). An RST gives a CLOSED flow with no error, a
    /// malformed segment a CLOSED flow with one error: in both cases the
    /// entry has nothing worth keeping.
    pub fn new(dir: Direction, hdr: &TcpHdr) -> Self {
        let mut flow = Self { state: TcpState::Closed, syn_seen: 0, guest_fin_seq: 0, errors: 0 };
        match Segment::of(hdr.flags) {
            Segment::Malformed => flow.errors = 1,
            Segment::Rst => {}
            Segment::Syn => {
                flow.syn_seen = syn_bit(dir);
                flow.state = match dir {
                    Direction::Out => TcpState::SynSent,
                    Direction::In => TcpState::Listen,
                };
            }
            Segment::SynAck => {
                flow.syn_seen = syn_bit(dir);
                flow.state = match dir {
                    Direction::Out => TcpState::SynRcvd,
                    Direction::In => TcpState::Established,
                };
            }
            Segment::Ack { fin } => {
                flow.state = TcpState::Established;
                if fin {
                    flow.fin(dir, hdr);
                }
            }
        }
        flow
    }

    /// The connection's state from the guest's point of view.
    pub fn state(&self) -> TcpState {
        self.state
    }

    /// Advance by one segment sent in direction `dir`; returns what
    /// happened and what the caller should do (see [`TcpVerdict`]).
    pub fn process(&mut self, dir: Direction, hdr: &TcpHdr) -> TcpVerdict {
        use TcpState as S;
        let next = match (Segment::of(hdr.flags), self.state, dir) {
            (Segment::Malformed, ..) => None,
            (Segment::Rst, ..) => {
                self.state = S::Closed;
                return TcpVerdict::Closed;
            }
            (Segment::Syn, S::Closed | S::TimeWait, _) => {
                *self = Self::new(dir, hdr);
                return TcpVerdict::NewFlow;
            }
            (Segment::Syn, S::Listen, Direction::In) => Some(S::Listen),
            (Segment::Syn, S::SynSent, Direction::Out) => Some(S::SynSent),
            (Segment::Syn, S::Listen, Direction::Out)
            | (Segment::Syn, S::SynSent, Direction::In)
            | (Segment::Syn, S::SynRcvd, _) => Some(S::SynRcvd),
            (Segment::Syn, ..) => None,
            (Segment::SynAck, S::Listen | S::SynRcvd, Direction::Out) => Some(S::SynRcvd),
            (Segment::SynAck, S::SynSent | S::SynRcvd, Direction::In) => Some(S::Established),
            (Segment::SynAck, s, d) if s.is_synchronized_open() && self.sent_syn(d) => Some(s),
            (Segment::SynAck, ..) => None,
            (Segment::Ack { fin }, ..) => return self.ack(dir, hdr, fin),
        };
        match next {
            Some(state) => {
                self.state = state;
                if hdr.flags & tcp_flags::SYN != 0 {
                    self.syn_seen |= syn_bit(dir);
                }
                TcpVerdict::Ok(state)
            }
            None => self.unexpected(),
        }
    }

    /// The expiry class for flow tables: [`ExpiryClass::TcpIncipient`]
    /// before the handshake completes, [`ExpiryClass::TcpEstablished`] in
    /// ESTABLISHED, [`ExpiryClass::TcpClosing`] once a FIN or RST was seen
    /// (CLOSED, FIN-WAIT-1 to TIME-WAIT).
    pub fn expiry_class(&self) -> ExpiryClass {
        match self.state {
            TcpState::Listen | TcpState::SynSent | TcpState::SynRcvd => ExpiryClass::TcpIncipient,
            TcpState::Established => ExpiryClass::TcpEstablished,
            TcpState::Closed
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::CloseWait
            | TcpState::Closing
            | TcpState::LastAck
            | TcpState::TimeWait => ExpiryClass::TcpClosing,
        }
    }

    /// Segments that did not fit the state so far (saturating at 65535),
    /// for eviction preference: a full table evicts misbehaving flows
    /// first.
    pub fn errors(&self) -> u32 {
        u32::from(self.errors)
    }

    /// The flow as one word (state, SYN bits, errors, FIN sequence), so
    /// a connection shared by two directions can change by
    /// compare-and-swap instead of a lock.
    pub fn pack(&self) -> u64 {
        u64::from(self.state as u8)
            | u64::from(self.syn_seen) << 8
            | u64::from(self.errors) << 16
            | u64::from(self.guest_fin_seq) << 32
    }

    /// The flow [`TcpFlow::pack`] made `w` from. (A state number out of
    /// range, which `pack` never writes, reads as CLOSED.)
    pub fn unpack(w: u64) -> Self {
        let state = usize::try_from(w & 0xff)
            .ok()
            .and_then(|i| TcpState::ALL.get(i).copied())
            .unwrap_or(TcpState::Closed);
        Self {
            state,
            syn_seen: (w >> 8) as u8,
            errors: (w >> 16) as u16,
            guest_fin_seq: (w >> 32) as u32,
        }
    }

    /// The state a packed flow is in, without unpacking the rest.
    pub fn state_of(w: u64) -> TcpState {
        Self::unpack(w & 0xff).state
    }

    /// True when the side sending in direction `dir` has sent a SYN.
    fn sent_syn(&self, dir: Direction) -> bool {
        self.syn_seen & syn_bit(dir) != 0
    }

    /// True when an In segment's acknowledgement covers the guest's FIN
    /// (as far as the FIN segment's sequence number tells; see the module
    /// documentation).
    fn acks_guest_fin(&self, hdr: &TcpHdr) -> bool {
        seq_after(hdr.ack, self.guest_fin_seq)
    }

    /// Count a segment that does not fit and report it.
    fn unexpected(&mut self) -> TcpVerdict {
        self.errors = self.errors.saturating_add(1);
        TcpVerdict::Unexpected(self.state)
    }

    /// An ACK or FIN-ACK: the acknowledgement first, then the FIN.
    fn ack(&mut self, dir: Direction, hdr: &TcpHdr, fin: bool) -> TcpVerdict {
        use TcpState as S;
        match (self.state, dir) {
            (S::Closed | S::Listen | S::SynSent, _) => return self.unexpected(),
            // The peer acknowledges the guest's SYN.
            (S::SynRcvd, Direction::In) => self.state = S::Established,
            // The guest closes before the handshake completes (RFC 9293
            // allows a FIN from SYN-RECEIVED); anything else from the guest
            // before the peer's ACK does not fit.
            (S::SynRcvd, Direction::Out) if fin => {}
            (S::SynRcvd, Direction::Out) => return self.unexpected(),
            // The peer acknowledges the guest's FIN.
            (S::FinWait1, Direction::In) if self.acks_guest_fin(hdr) => self.state = S::FinWait2,
            (S::Closing, Direction::In) if self.acks_guest_fin(hdr) => self.state = S::TimeWait,
            (S::LastAck, Direction::In) if self.acks_guest_fin(hdr) => {
                self.state = S::Closed;
                return TcpVerdict::Closed;
            }
            _ => {}
        }
        if fin {
            self.fin(dir, hdr);
        }
        TcpVerdict::Ok(self.state)
    }

    /// A FIN from direction `dir`, after its acknowledgement was processed
    /// (the state is synchronized or SYN-RECEIVED).
    fn fin(&mut self, dir: Direction, hdr: &TcpHdr) {
        use TcpState as S;
        match dir {
            Direction::Out => {
                if !self.state.guest_fin_sent() || seq_after(hdr.seq, self.guest_fin_seq) {
                    self.guest_fin_seq = hdr.seq;
                }
                self.state = match self.state {
                    S::SynRcvd | S::Established => S::FinWait1,
                    S::CloseWait => S::LastAck,
                    // A retransmission of the guest's FIN.
                    s => s,
                };
            }
            Direction::In => {
                if self.state.peer_fin_sent() {
                    // A retransmission of the peer's FIN.
                    return;
                }
                self.state = match self.state {
                    S::Established => S::CloseWait,
                    S::FinWait1 => S::Closing,
                    S::FinWait2 => S::TimeWait,
                    s => s,
                };
            }
        }
    }
}

//! Rule predicates: conditions on a packet's headers, its body and its
//! metadata, ANDed together by a rule.
//!
//! (The predicate set is written in a separate step; this file holds the
//! context every predicate is evaluated against.)

use super::Direction;
use super::meta::Meta;
use crate::ddi::MsgBlk;
use crate::packet::Headers;

/// What a predicate looks at: one packet being classified.
pub struct MatchCtx<'a> {
    /// Which way the packet travels.
    pub dir: Direction,
    /// Its parsed headers (inner headers for an underlay frame).
    pub hdrs: &'a Headers,
    /// The message, for body predicates (bytes from `hdrs.offsets.body`).
    pub mblk: &'a MsgBlk,
    /// Metadata written by earlier layers.
    pub meta: &'a Meta,
}

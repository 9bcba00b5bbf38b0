//! Shared driver for the parser fuzz targets.
//!
//! The input's first byte chooses how many blocks (1..=8) the packet is
//! split into and the next bytes where; the rest is the packet. Every
//! parse must return without panicking; a packet that parses must also
//! survive emission: writing back unchanged headers must leave every byte
//! as it was, and popping any encapsulation must leave the inner frame.
//! No kernel memory may be leaked on any path.

use opte::ddi::MsgBlk;
use opte::packet::{Headers, Packet, ParseError};

/// Most blocks a fuzz input is split into.
const MAX_SEGS: usize = 8;

/// Split `data` into a block chain as its leading bytes direct; returns
/// the chain and the packet bytes.
fn chain(data: &[u8]) -> Option<(MsgBlk, &[u8])> {
    let (&n, rest) = data.split_first()?;
    let segs = usize::from(n) % MAX_SEGS + 1;
    let cuts_len = segs - 1;
    if rest.len() < cuts_len {
        return None;
    }
    let (cuts, pkt) = rest.split_at(cuts_len);
    let mut bounds: Vec<usize> = cuts
        .iter()
        .map(|c| if pkt.is_empty() { 0 } else { usize::from(*c) % (pkt.len() + 1) })
        .collect();
    bounds.sort_unstable();
    let mut pieces = Vec::with_capacity(segs);
    let mut prev = 0;
    for b in bounds {
        pieces.push(&pkt[prev..b]);
        prev = b;
    }
    pieces.push(&pkt[prev..]);
    let mp = fakekernel::msg::chain_from_segments(&pieces, usize::from(n) % 3 * 32);
    // SAFETY: chain_from_segments returns a fresh chain we now own.
    let m = unsafe { MsgBlk::wrap(mp) }?;
    Some((m, pkt))
}

/// Which entry point a target drives.
#[derive(Clone, Copy)]
pub enum Entry {
    Guest,
    Underlay,
}

/// Run one fuzz input through parsing and emission.
pub fn run(data: &[u8], entry: Entry) {
    let k = fakekernel::scope();
    if let Some((m, pkt)) = chain(data) {
        let parsed: Result<Headers, ParseError> = match entry {
            Entry::Guest => Headers::parse_guest(&m),
            Entry::Underlay => Headers::parse_underlay(&m),
        };
        let again = match entry {
            Entry::Guest => Packet::parse_guest(m),
            Entry::Underlay => Packet::parse_underlay(m),
        };
        match again {
            Ok(mut p) => {
                assert_eq!(Ok(*p.headers()), parsed, "both entry points agree");
                p.emit().expect("emit of unchanged headers");
                assert_eq!(p.mblk().to_vec(), pkt, "unchanged emit leaves the bytes");
                if p.headers().outer.is_some() {
                    let inner_at = p.headers().offsets.inner_eth as usize;
                    p.pop_encap().expect("pop parsed encapsulation");
                    assert_eq!(p.mblk().to_vec(), &pkt[inner_at..]);
                }
                // Full checksum computation must not fail on a parsed packet.
                let _ = p.compute_checksums();
            }
            Err(f) => assert_eq!(Some(f.error), parsed.err(), "both entry points agree"),
        }
    }
    k.assert_clean();
}

//! A frame split across blocks, at any bytes, reads and writes exactly as
//! the same frame in one block: the parser gathers only the headers a
//! block boundary falls inside (and counts them in `straddled`), and the
//! emitter writes and checksums across boundaries.
//!
//! For generated frames of every kind (`gen`) and for a fixed set of
//! representative frames split at every byte, each test checks that
//!
//! - one block parses to exactly the header values that were built, with
//!   `straddled` 0;
//! - a split chain parses to the same values, with `straddled` counting
//!   the pieces the parser reads whole that a boundary falls inside;
//! - after the same header changes, `Packet::emit` gives the same bytes
//!   for both, leaves a block shared with another message untouched, and
//!   the result parses to the changed values.

#[path = "gen/mod.rs"]
mod r#gen;

use r#gen::{
    Case, Mod, any_case, apply, chain, cut_points, cuts, every_mod, headroom, mods, packet, parse,
    representative, segments, split_chain, straddles, unstraddled, without_csums,
};
use opte::ddi::MsgBlk;
use proptest::prelude::*;

/// Generated frames per property.
const CASES: u32 = 2000;

/// A second message sharing every data block of `m` (`dupmsg`).
fn share(m: &MsgBlk) -> MsgBlk {
    // SAFETY: m is a live message; dupmsg only takes references on its
    // dblks and returns a new chain (or NULL) that we own.
    let dup = unsafe { illumos_sys_hdrs::dupmsg(m.as_ptr()) };
    // SAFETY: dup is NULL or a fresh chain nothing else owns.
    unsafe { MsgBlk::wrap(dup) }.expect("dupmsg allocates")
}

/// The whole check for one frame, one split and one set of changes (see
/// the module comment). With `shared`, the split chain's blocks are also
/// held by another message during the emit.
fn check_split(case: &Case, cuts: &[usize], headroom: usize, mods: &[Mod], shared: bool) {
    let bytes = case.bytes();
    let ul = case.is_underlay();

    let whole_m = chain(&[&bytes], headroom);
    let whole = parse(ul, &whole_m);
    assert_eq!(whole.straddled, 0, "one block never gathers a header");
    assert_eq!(
        without_csums(&whole),
        without_csums(&case.expected()),
        "parsed values differ from the built ones"
    );

    let split_m = split_chain(&bytes, cuts, headroom);
    let split = parse(ul, &split_m);
    assert_eq!(unstraddled(&split), whole, "split at {cuts:?} parses differently");
    assert_eq!(
        split.straddled,
        straddles(&case.read_units(), cuts),
        "split at {cuts:?}: wrong count of gathered headers"
    );

    let other = shared.then(|| share(&split_m));
    let mut one = packet(ul, whole_m);
    let mut many = packet(ul, split_m);
    apply(one.headers_mut(), mods);
    apply(many.headers_mut(), mods);
    one.emit().expect("emit into one block");
    many.emit().expect("emit into a split chain");
    let out = one.mblk().to_vec();
    assert_eq!(many.mblk().to_vec(), out, "split at {cuts:?} emits different bytes");
    assert_eq!(unstraddled(many.headers()), unstraddled(one.headers()));
    if let Some(other) = other {
        assert_eq!(other.to_vec(), bytes, "emit wrote into a shared block");
    }

    let mut want = case.expected();
    apply(&mut want, mods);
    let again = parse(ul, many.mblk());
    assert_eq!(
        unstraddled(&again),
        unstraddled(many.headers()),
        "emitted headers don't parse back"
    );
    assert_eq!(
        without_csums(&unstraddled(&again)),
        without_csums(&want),
        "a change was lost or another field changed"
    );
    let flat = chain(&[&out], 0);
    assert_eq!(parse(ul, &flat), *one.headers());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Random frames of every kind, cut into up to eight blocks (empty
    /// and one-byte blocks included), with random changes.
    #[test]
    fn split_chain_reads_and_writes_like_one_block(
        case in any_case(),
        idx in cuts(),
        headroom in headroom(),
        mods in mods(),
        shared in any::<bool>(),
    ) {
        let k = fakekernel::scope();
        let cuts = cut_points(&idx, case.bytes().len());
        check_split(&case, &cuts, headroom, &mods, shared);
        k.assert_clean();
    }

    /// The representative frames cut into up to eight blocks at random.
    #[test]
    fn representative_frames_split_k_ways(
        which in any::<prop::sample::Index>(),
        idx in cuts(),
        headroom in headroom(),
        mods in mods(),
        shared in any::<bool>(),
    ) {
        let k = fakekernel::scope();
        let frames = representative();
        let (_, case) = &frames[which.index(frames.len())];
        let cuts = cut_points(&idx, case.bytes().len());
        check_split(case, &cuts, headroom, &mods, shared);
        k.assert_clean();
    }
}

/// Every representative frame cut in two at every byte.
#[test]
fn every_two_block_split() {
    let k = fakekernel::scope();
    for (name, case) in representative() {
        let len = case.bytes().len();
        for cut in 0..=len {
            let r = std::panic::catch_unwind(|| {
                check_split(&case, &[cut], 0, &every_mod(), cut % 2 == 0)
            });
            if r.is_err() {
                panic!("{name}: failed with a block boundary at byte {cut} of {len}");
            }
        }
    }
    k.assert_clean();
}

/// Every representative frame cut into three blocks at every pair of
/// bytes (both cuts at one byte: an empty middle block).
#[test]
fn every_three_block_split() {
    let k = fakekernel::scope();
    for (name, case) in representative() {
        let len = case.bytes().len();
        for a in 0..=len {
            for b in a..=len {
                let r = std::panic::catch_unwind(|| {
                    check_split(&case, &[a, b], 0, &every_mod(), false)
                });
                if r.is_err() {
                    panic!("{name}: failed with block boundaries at bytes {a} and {b} of {len}");
                }
            }
        }
    }
    k.assert_clean();
}

/// Every representative frame in one-byte blocks: every piece the parser
/// reads longer than a byte is gathered.
#[test]
fn one_byte_blocks() {
    let k = fakekernel::scope();
    for (name, case) in representative() {
        let bytes = case.bytes();
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        let units = case.read_units();
        let multi_byte = units.iter().filter(|r| r.len() > 1).count() as u16;
        assert_eq!(straddles(&units, &cuts), multi_byte);
        let m = chain(&segments(&bytes, &cuts), 0);
        assert_eq!(m.seg_count(), bytes.len());
        assert_eq!(parse(case.is_underlay(), &m).straddled, multi_byte, "{name}");
        check_split(&case, &cuts, 0, &every_mod(), false);
    }
    k.assert_clean();
}

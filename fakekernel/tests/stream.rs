//! The STREAMS buffer functions, called through the prototypes
//! `illumos-sys-hdrs` declares, as kernel code calls them.

use fakekernel::msg::{block_count, block_lens, chain_bytes, chain_from_segments};
use fakekernel::stream::UNINIT_BYTE;
use fakekernel::{KernelError, Live};
use illumos_sys_hdrs::{
    BPRI_MED, DBLK_REFMAX, HCK_FULLCKSUM, HCK_PARTIALCKSUM, M_DATA, allocb, copyb, copymsg, dblk_t,
    dupb, dupmsg, freeb, freemsg, freemsgchain, mblk_t, msgpullup, msgsize, pullupmsg,
};
use std::ptr::null_mut;

/// An `M_PROTO` message type, to build messages of mixed types.
const M_PROTO: u8 = 0x01;

fn live(mblks: usize, dblks: usize) -> Live {
    Live { mblks, dblks, ..Live::default() }
}

/// The blocks of a message, in order.
///
/// # Safety
///
/// `mp` is NULL or a readable message.
unsafe fn blocks(mp: *mut mblk_t) -> Vec<*mut mblk_t> {
    let mut out = Vec::new();
    let mut bp = mp;
    while !bp.is_null() {
        out.push(bp);
        // SAFETY: the caller guarantees the message is readable.
        bp = unsafe { (*bp).b_cont };
    }
    out
}

/// The dblk of each block of a message.
///
/// # Safety
///
/// `mp` is NULL or a readable message.
unsafe fn dblks(mp: *mut mblk_t) -> Vec<*mut dblk_t> {
    // SAFETY: as the caller's.
    unsafe { blocks(mp).into_iter().map(|bp| (*bp).b_datap).collect() }
}

/// Mark a message's first dblk with checksum offload state.
///
/// # Safety
///
/// `mp` is a live message.
unsafe fn set_offload(mp: *mut mblk_t) {
    // SAFETY: as the caller's.
    unsafe {
        let db = (*mp).b_datap;
        (*db).db_cksumstart = 14;
        (*db).db_cksumstuff = 30;
        (*db).db_cksumend = 60;
        (*db).db_struioun.cksum.flags = HCK_PARTIALCKSUM | HCK_FULLCKSUM;
        (*db).db_struioun.cksum.cksum_val = 0xbeef;
    }
}

/// The offload state of a message's first dblk, all zero when absent.
///
/// # Safety
///
/// `mp` is a live message.
unsafe fn offload(mp: *mut mblk_t) -> (isize, isize, isize, u16, u32) {
    // SAFETY: as the caller's.
    unsafe {
        let db = (*mp).b_datap;
        (
            (*db).db_cksumstart,
            (*db).db_cksumstuff,
            (*db).db_cksumend,
            (*db).db_struioun.cksum.flags,
            (*db).db_struioun.cksum.cksum_val,
        )
    }
}

#[test]
fn allocb_gives_an_empty_block_over_a_fresh_buffer() {
    let k = fakekernel::scope();
    // SAFETY: each block is freed once, below.
    unsafe {
        let mp = allocb(100, BPRI_MED);
        assert!(!mp.is_null());
        let db = (*mp).b_datap;
        assert_eq!((*db).db_base, (*mp).b_rptr);
        assert_eq!((*mp).b_rptr, (*mp).b_wptr);
        assert_eq!((*db).db_lim.addr() - (*db).db_base.addr(), 100);
        assert_eq!((*db).db_ref, 1);
        assert_eq!((*db).db_type, M_DATA);
        assert_eq!((*db).db_mblk, mp);
        assert_eq!(offload(mp), (0, 0, 0, 0, 0));
        assert!((*mp).b_next.is_null() && (*mp).b_prev.is_null() && (*mp).b_cont.is_null());
        assert_eq!((*db).db_base.addr() % 8, 0, "db_base is long-aligned");
        let buf = std::slice::from_raw_parts((*db).db_base, 100);
        assert!(buf.iter().all(|b| *b == UNINIT_BYTE), "buffer is not zeroed");
        assert_eq!(k.live(), live(1, 1));
        freeb(mp);

        let empty = allocb(0, BPRI_MED);
        assert!(!empty.is_null(), "allocb(0) is valid");
        assert_eq!((*(*empty).b_datap).db_base, (*(*empty).b_datap).db_lim);
        assert_eq!(msgsize(empty), 0);
        freemsg(empty);
    }
    k.assert_clean();
}

#[test]
fn dupb_shares_the_bytes_and_freeing_in_either_order_frees_once() {
    let k = fakekernel::scope();
    for free_original_first in [true, false] {
        // SAFETY: each block is freed once, below.
        unsafe {
            let mp = chain_from_segments(&[b"hello"], 4);
            (*mp).b_band = 3;
            (*mp).b_flag = 0x10;
            let dup = dupb(mp);
            assert!(!dup.is_null());
            assert_ne!(dup, mp);
            assert_eq!((*dup).b_datap, (*mp).b_datap);
            assert_eq!(((*dup).b_rptr, (*dup).b_wptr), ((*mp).b_rptr, (*mp).b_wptr));
            assert_eq!(((*dup).b_band, (*dup).b_flag), (3, 0x10));
            assert!((*dup).b_cont.is_null());
            assert_eq!((*(*mp).b_datap).db_ref, 2);
            assert_eq!(k.live(), live(2, 1));

            *(*mp).b_rptr = b'j';
            assert_eq!(chain_bytes(dup), b"jello");

            let (first, second) = if free_original_first { (mp, dup) } else { (dup, mp) };
            freeb(first);
            assert_eq!((*(*second).b_datap).db_ref, 1);
            assert_eq!(k.live(), live(1, 1));
            assert_eq!(chain_bytes(second), b"jello");
            freeb(second);
            assert_eq!(k.live(), Live::default());
        }
    }
    k.assert_clean();
}

#[test]
fn dupb_refuses_at_dblk_refmax() {
    let k = fakekernel::scope();
    // SAFETY: each block is freed once, below.
    unsafe {
        let mp = allocb(8, BPRI_MED);
        let dups: Vec<_> = (1..DBLK_REFMAX).map(|_| dupb(mp)).collect();
        assert!(dups.iter().all(|d| !d.is_null()));
        assert_eq!((*(*mp).b_datap).db_ref, DBLK_REFMAX);
        assert!(dupb(mp).is_null(), "dupb past DBLK_REFMAX");
        assert!(k.errors().is_empty(), "refusing is not an error");
        for d in dups {
            freeb(d);
        }
        assert_eq!((*(*mp).b_datap).db_ref, 1);
        freeb(mp);
    }
    k.assert_clean();
}

#[test]
fn copyb_makes_a_private_copy_with_the_same_offsets() {
    let k = fakekernel::scope();
    // SAFETY: each block is freed once, below.
    unsafe {
        let mp = chain_from_segments(&[b"abcdef"], 6);
        (*mp).b_rptr = (*mp).b_rptr.add(1); // "bcdef", 7 bytes in
        set_offload(mp);
        (*(*mp).b_datap).db_type = M_PROTO;
        (*mp).b_band = 2;
        let copy = copyb(mp);
        assert!(!copy.is_null());
        let (db, cdb) = ((*mp).b_datap, (*copy).b_datap);
        assert_ne!(db, cdb);
        assert_eq!(((*db).db_ref, (*cdb).db_ref), (1, 1));
        assert_eq!((*copy).b_rptr.addr() - (*cdb).db_base.addr(), 7);
        assert_eq!(chain_bytes(copy), b"bcdef");
        assert_eq!((*cdb).db_lim.addr() - (*cdb).db_base.addr(), 12, "whole buffer");
        let whole = |d: *mut dblk_t| std::slice::from_raw_parts((*d).db_base, 12).to_vec();
        assert_eq!(whole(cdb), whole(db), "headroom is copied too");
        assert_eq!(((*cdb).db_type, (*copy).b_band), (M_PROTO, 2));
        assert_eq!(offload(copy), (0, 0, 0, 0, 0), "illumos copyb drops offload state");

        *(*copy).b_rptr = b'X';
        assert_eq!(chain_bytes(mp), b"bcdef");
        assert_eq!(chain_bytes(copy), b"Xcdef");
        freeb(mp);
        freeb(copy);
    }
    k.assert_clean();
}

#[test]
fn copymsg_and_dupmsg_cover_the_whole_chain() {
    let k = fakekernel::scope();
    // SAFETY: each message is freed once, below.
    unsafe {
        let mp = chain_from_segments(&[b"ab", b"", b"cdef"], 2);
        let copy = copymsg(mp);
        let dup = dupmsg(mp);
        assert_eq!(block_lens(copy), vec![2, 0, 4]);
        assert_eq!(block_lens(dup), vec![2, 0, 4]);
        assert_eq!(chain_bytes(copy), b"abcdef");
        assert_eq!(chain_bytes(dup), b"abcdef");
        let (orig, copied, duped) = (dblks(mp), dblks(copy), dblks(dup));
        assert_eq!(duped, orig, "dupmsg shares every dblk");
        assert!(copied.iter().all(|d| !orig.contains(d)), "copymsg shares none");
        assert!(orig.iter().all(|d| (**d).db_ref == 2));
        assert!(copied.iter().all(|d| (**d).db_ref == 1));
        assert_eq!(k.live(), live(9, 6));
        assert!(copymsg(null_mut()).is_null());
        assert!(dupmsg(null_mut()).is_null());
        freemsg(mp);
        freemsg(copy);
        freemsg(dup);
    }
    k.assert_clean();
}

#[test]
fn msgpullup_copies_every_leading_byte_into_one_block_and_leaves_the_original() {
    let k = fakekernel::scope();
    // SAFETY: each message is freed once, below.
    unsafe {
        let mp = chain_from_segments(&[b"ab", b"cde", b"f"], 1);
        set_offload(mp);
        for len in [-1, 0, 1, 3, 6] {
            let pulled = msgpullup(mp, len);
            assert!(!pulled.is_null(), "len {len}");
            assert_eq!(block_lens(pulled), vec![6], "illumos pulls up everything (len {len})");
            assert_eq!(chain_bytes(pulled), b"abcdef");
            assert_eq!((*(*pulled).b_datap).db_ref, 1);
            assert_eq!(offload(pulled), (0, 0, 0, 0, 0), "offload state is not copied");
            freemsg(pulled);
        }
        assert!(msgpullup(mp, 7).is_null(), "more than the message holds");
        assert_eq!(block_lens(mp), vec![2, 3, 1]);
        assert_eq!(chain_bytes(mp), b"abcdef");
        assert!(k.errors().is_empty(), "a short message is not an error");
        freemsg(mp);
    }
    k.assert_clean();
}

#[test]
fn msgpullup_duplicates_what_follows_the_leading_bytes() {
    let k = fakekernel::scope();
    // SAFETY: each message is freed once, below.
    unsafe {
        // A block of another type ends the pull-up; it is dupb'd.
        let mp = chain_from_segments(&[b"ab", b"cd", b"ef"], 0);
        let third = (*(*mp).b_cont).b_cont;
        (*(*third).b_datap).db_type = M_PROTO;
        let pulled = msgpullup(mp, 4);
        assert_eq!(block_lens(pulled), vec![4, 2]);
        assert_eq!(chain_bytes(pulled), b"abcdef");
        assert_eq!((*(*pulled).b_cont).b_datap, (*third).b_datap);
        assert_eq!((*(*third).b_datap).db_ref, 2);
        assert!(msgpullup(mp, 5).is_null(), "only 4 bytes lead with M_DATA");
        freemsg(pulled);
        freemsg(mp);

        // Zero-length blocks after the data are dupb'd too (as illumos).
        let mp = chain_from_segments(&[b"abc", b""], 0);
        let pulled = msgpullup(mp, -1);
        assert_eq!(block_lens(pulled), vec![3, 0]);
        freemsg(pulled);
        freemsg(mp);
    }
    k.assert_clean();
}

#[test]
fn pullupmsg_leaves_an_aligned_first_block_that_has_the_bytes() {
    let k = fakekernel::scope();
    // SAFETY: each message is freed once, below.
    unsafe {
        let mp = chain_from_segments(&[b"abcdefgh", b"ij"], 0);
        let db = (*mp).b_datap;
        assert_eq!(pullupmsg(mp, 4), 1);
        assert_eq!(pullupmsg(mp, 8), 1);
        assert_eq!((*mp).b_datap, db, "nothing to do");
        assert_eq!(block_lens(mp), vec![8, 2]);
        freemsg(mp);

        let single = chain_from_segments(&[b"abc"], 0);
        let db = (*single).b_datap;
        assert_eq!(pullupmsg(single, -1), 1);
        assert_eq!((*single).b_datap, db);
        freemsg(single);
    }
    k.assert_clean();
}

#[test]
fn pullupmsg_gathers_the_bytes_into_the_head_block_in_place() {
    let k = fakekernel::scope();
    let cases: [(isize, &[usize], &[u8]); 4] =
        [(-1, &[8], b""), (5, &[5, 2, 1], b"fg"), (7, &[7, 1], b""), (8, &[8], b"")];
    for (len, lens, rest_of_second) in cases {
        // SAFETY: each message is freed once, below.
        unsafe {
            let mp = chain_from_segments(&[b"abc", b"defg", b"h"], 0);
            set_offload(mp);
            let old_first_db = (*mp).b_datap;
            let second = (*mp).b_cont;
            assert_eq!(pullupmsg(mp, len), 1, "len {len}");
            assert_ne!((*mp).b_datap, old_first_db, "a new dblk is swapped in");
            assert_eq!(block_lens(mp), lens.to_vec(), "len {len}");
            assert_eq!(chain_bytes(mp), b"abcdefgh");
            assert_eq!((*(*mp).b_datap).db_mblk, mp);
            assert_eq!(offload(mp), (0, 0, 0, 0, 0), "illumos does not carry offload state");
            if !rest_of_second.is_empty() {
                assert_eq!((*mp).b_cont, second, "a partly used block stays, advanced");
                assert_eq!(
                    std::slice::from_raw_parts((*second).b_rptr, rest_of_second.len()),
                    rest_of_second
                );
            }
            assert_eq!(k.live(), live(lens.len(), lens.len()), "used blocks are freed");
            freemsg(mp);
        }
    }
    k.assert_clean();
}

#[test]
fn pullupmsg_fails_without_change_when_the_message_is_short() {
    let k = fakekernel::scope();
    // SAFETY: the message is freed once, below.
    unsafe {
        let mp = chain_from_segments(&[b"abc", b"defg", b"h"], 0);
        let before = dblks(mp);
        assert_eq!(pullupmsg(mp, 9), 0);
        assert_eq!(dblks(mp), before);
        assert_eq!(block_lens(mp), vec![3, 4, 1]);
        assert!(k.errors().is_empty(), "a short message is not an error");
        freemsg(mp);
    }
    k.assert_clean();
}

#[test]
fn pullupmsg_realigns_a_misaligned_first_block() {
    let k = fakekernel::scope();
    // SAFETY: each message is freed once, below.
    unsafe {
        let mp = chain_from_segments(&[b"abcdef", b"gh"], 1);
        let db = (*mp).b_datap;
        assert_eq!(pullupmsg(mp, 2), 1);
        assert_ne!((*mp).b_datap, db);
        assert_eq!((*mp).b_rptr.addr() % 8, 0);
        assert_eq!(block_lens(mp), vec![6, 2], "exactly the first block moves");
        assert_eq!(chain_bytes(mp), b"abcdefgh");
        freemsg(mp);
    }
    k.assert_clean();
}

#[test]
fn pullupmsg_drops_only_its_own_reference_to_a_shared_block() {
    let k = fakekernel::scope();
    // SAFETY: each message is freed once, below.
    unsafe {
        let mp = chain_from_segments(&[b"ab", b"cd"], 0);
        let other = dupb((*mp).b_cont);
        assert_eq!(pullupmsg(mp, -1), 1);
        assert_eq!(block_lens(mp), vec![4]);
        assert_eq!((*(*other).b_datap).db_ref, 1);
        assert_eq!(chain_bytes(other), b"cd");
        freemsg(mp);
        freeb(other);
    }
    k.assert_clean();
}

#[test]
fn msgsize_sums_every_block() {
    let k = fakekernel::scope();
    // SAFETY: the message is freed once, below.
    unsafe {
        assert_eq!(msgsize(null_mut()), 0);
        let mp = chain_from_segments(&[b"abc", b"", b"defgh"], 3);
        (*(*(*mp).b_cont).b_datap).db_type = M_PROTO;
        assert_eq!(msgsize(mp), 8);
        freemsg(mp);
    }
    k.assert_clean();
}

#[test]
fn freemsgchain_frees_every_message_of_a_list() {
    let k = fakekernel::scope();
    // SAFETY: the list is freed once, below.
    unsafe {
        let [a, b, c] = [(); 3].map(|()| chain_from_segments(&[b"ab", b"cd"], 0));
        (*a).b_next = b;
        (*b).b_next = c;
        assert_eq!(k.live(), live(6, 6));
        freemsgchain(a);
        freemsgchain(null_mut());
    }
    k.assert_clean();
}

#[test]
fn chain_from_segments_lays_out_blocks_with_headroom() {
    let k = fakekernel::scope();
    // SAFETY: the message is freed once, below.
    unsafe {
        let mp = chain_from_segments(&[b"abc", b"", b"de"], 5);
        assert_eq!(block_count(mp), 3);
        assert_eq!(block_lens(mp), vec![3, 0, 2]);
        assert_eq!(chain_bytes(mp), b"abcde");
        for bp in blocks(mp) {
            let db = (*bp).b_datap;
            assert_eq!((*bp).b_rptr.addr() - (*db).db_base.addr(), 5);
            assert_eq!((*bp).b_wptr, (*db).db_lim);
        }
        freemsg(mp);
        assert!(chain_from_segments(&[], 0).is_null());
        assert_eq!(block_count(null_mut()), 0);
    }
    k.assert_clean();
}

#[test]
fn misuse_of_mblks_is_reported_not_obeyed() {
    let k = fakekernel::scope();
    // SAFETY: only pointers the fake kernel rejects before use are
    // misused; each real block is freed once.
    unsafe {
        freeb(null_mut());
        assert_eq!(k.take_errors(), vec![KernelError::FreebNull]);
        freemsg(null_mut());
        assert!(k.errors().is_empty(), "freemsg(NULL) is fine");

        let mp = allocb(8, BPRI_MED);
        freeb(mp);
        freeb(mp);
        assert!(dupb(mp).is_null());
        let mblk = mp.addr();
        assert_eq!(
            k.take_errors(),
            vec![
                KernelError::MblkFreed { op: "freeb", mblk },
                KernelError::MblkFreed { op: "dupb", mblk }
            ]
        );

        let mut not_a_block = [0u64; 8];
        let wild = not_a_block.as_mut_ptr().cast::<mblk_t>();
        freemsg(wild);
        assert!(copyb(wild).is_null());
        assert_eq!(
            k.take_errors(),
            vec![
                KernelError::NotAnMblk { op: "freemsg", addr: wild.addr() },
                KernelError::NotAnMblk { op: "copyb", addr: wild.addr() },
            ]
        );
        assert_eq!(not_a_block, [0; 8], "a wild pointer is not written through");

        assert!(dupb(null_mut()).is_null());
        assert_eq!(pullupmsg(null_mut(), -1), 0);
        assert_eq!(
            k.take_errors(),
            vec![
                KernelError::NullMessage { op: "dupb" },
                KernelError::NullMessage { op: "pullupmsg" }
            ]
        );
    }
    k.assert_clean();
}

#[test]
fn freeing_a_block_still_on_a_list_is_reported_and_completed() {
    let k = fakekernel::scope();
    // SAFETY: each block is freed once, below.
    unsafe {
        let first = allocb(8, BPRI_MED);
        let second = allocb(8, BPRI_MED);
        (*first).b_next = second;
        freemsg(first);
        assert_eq!(
            k.take_errors(),
            vec![KernelError::LinkedMblk { op: "freemsg", mblk: first.addr() }]
        );
        assert_eq!(k.live(), live(1, 1), "the linked block was still freed");
        freemsg(second);
    }
    k.assert_clean();
}

#[test]
fn reversed_block_pointers_are_reported() {
    let k = fakekernel::scope();
    // SAFETY: the block is restored before it is freed.
    unsafe {
        let mp = chain_from_segments(&[b"abcd"], 0);
        let (rptr, wptr) = ((*mp).b_rptr, (*mp).b_wptr);
        (*mp).b_rptr = wptr;
        (*mp).b_wptr = rptr;
        assert!(copyb(mp).is_null());
        assert_eq!(msgsize(mp), 0);
        assert_eq!(pullupmsg(mp, -1), 0);
        let mblk = mp.addr();
        assert_eq!(
            k.take_errors(),
            vec![
                KernelError::BadBlockPointers { op: "copyb", mblk },
                KernelError::BadBlockPointers { op: "msgsize", mblk },
                KernelError::BadBlockPointers { op: "pullupmsg", mblk },
            ]
        );
        (*mp).b_rptr = rptr;
        (*mp).b_wptr = wptr;
        freemsg(mp);
    }
    k.assert_clean();
}

#[test]
fn dupb_and_freeb_race_safely_on_one_dblk() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 2_000;
    let k = fakekernel::scope();
    let mp = chain_from_segments(&[b"shared"], 0);
    let addr = mp.expose_provenance();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(move || {
                let mp = std::ptr::with_exposed_provenance_mut::<mblk_t>(addr);
                for _ in 0..ROUNDS {
                    // SAFETY: `mp` stays live until every thread is done;
                    // each dup is freed once.
                    unsafe {
                        let dup = dupb(mp);
                        assert!(!dup.is_null());
                        assert_eq!(chain_bytes(dup), b"shared");
                        freeb(dup);
                    }
                }
            });
        }
    });
    // SAFETY: every other reference is gone; the block is freed once.
    unsafe {
        assert_eq!((*(*mp).b_datap).db_ref, 1);
        assert_eq!(k.live(), live(1, 1), "dups made on other threads are not ours");
        freemsg(mp);
    }
    k.assert_clean();
}

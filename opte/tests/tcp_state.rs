//! The TCP state a middlebox tracks per flow: handshakes, closes, resets,
//! new connections on old tuples, unexpected segments and mid-stream joins,
//! driven segment by segment as the port would see them.

use opte::engine::Direction::{self, In, Out};
use opte::engine::ExpiryClass;
use opte::engine::tcp_state::{TcpFlow, TcpState, TcpVerdict};
use opte::packet::TcpHdr;
use opte::packet::tcp::tcp_flags::{ACK, FIN, PSH, RST, SYN};

/// The guest's initial sequence number.
const GUEST_ISN: u32 = 1000;
/// The peer's initial sequence number.
const PEER_ISN: u32 = 5000;
/// The sequence number of the segment carrying the guest's FIN.
const GUEST_FIN: u32 = 2000;
/// The sequence number of the segment carrying the peer's FIN.
const PEER_FIN: u32 = 7000;

const SYN_ACK: u8 = SYN | ACK;
const FIN_ACK: u8 = FIN | ACK;

const ALL_STATES: [TcpState; 11] = TcpState::ALL;

fn seg(flags: u8, seq: u32, ack: u32) -> TcpHdr {
    TcpHdr { flags, seq, ack, ..TcpHdr::EMPTY }
}

/// Feed one segment and return the verdict.
fn step(f: &mut TcpFlow, dir: Direction, flags: u8, seq: u32, ack: u32) -> TcpVerdict {
    f.process(dir, &seg(flags, seq, ack))
}

/// Feed one segment that must fit and leave the flow in `want`.
fn ok(f: &mut TcpFlow, dir: Direction, flags: u8, seq: u32, ack: u32, want: TcpState) {
    assert_eq!(step(f, dir, flags, seq, ack), TcpVerdict::Ok(want), "{dir:?} flags {flags:#04x}");
    assert_eq!(f.state(), want);
}

/// A flow the guest opened: SYN, SYN-ACK, ACK.
fn established() -> TcpFlow {
    let mut f = TcpFlow::new(Out, &seg(SYN, GUEST_ISN, 0));
    ok(&mut f, In, SYN_ACK, PEER_ISN, GUEST_ISN + 1, TcpState::Established);
    ok(&mut f, Out, ACK, GUEST_ISN + 1, PEER_ISN + 1, TcpState::Established);
    f
}

/// A flow brought to `state` along an ordinary path, with no errors.
fn flow_in(state: TcpState) -> TcpFlow {
    use TcpState as S;
    let f = match state {
        S::Closed => {
            let mut f = TcpFlow::new(Out, &seg(SYN, GUEST_ISN, 0));
            assert_eq!(step(&mut f, In, RST | ACK, 0, GUEST_ISN + 1), TcpVerdict::Closed);
            f
        }
        S::Listen => TcpFlow::new(In, &seg(SYN, PEER_ISN, 0)),
        S::SynSent => TcpFlow::new(Out, &seg(SYN, GUEST_ISN, 0)),
        S::SynRcvd => {
            let mut f = flow_in(S::Listen);
            ok(&mut f, Out, SYN_ACK, GUEST_ISN, PEER_ISN + 1, S::SynRcvd);
            f
        }
        S::Established => established(),
        S::FinWait1 => {
            let mut f = established();
            ok(&mut f, Out, FIN_ACK, GUEST_FIN, PEER_ISN + 1, S::FinWait1);
            f
        }
        S::FinWait2 => {
            let mut f = flow_in(S::FinWait1);
            ok(&mut f, In, ACK, PEER_ISN + 1, GUEST_FIN + 1, S::FinWait2);
            f
        }
        S::CloseWait => {
            let mut f = established();
            ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_ISN + 1, S::CloseWait);
            f
        }
        S::Closing => {
            let mut f = flow_in(S::FinWait1);
            ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_FIN, S::Closing);
            f
        }
        S::LastAck => {
            let mut f = flow_in(S::CloseWait);
            ok(&mut f, Out, FIN_ACK, GUEST_FIN, PEER_FIN + 1, S::LastAck);
            f
        }
        S::TimeWait => {
            let mut f = flow_in(S::FinWait2);
            ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_FIN + 1, S::TimeWait);
            f
        }
    };
    assert_eq!(f.state(), state);
    assert_eq!(f.errors(), 0, "the path to {state} has no unexpected segment");
    f
}

#[test]
fn active_open_and_close() {
    let k = fakekernel::scope();
    let mut f = TcpFlow::new(Out, &seg(SYN, GUEST_ISN, 0));
    assert_eq!(f.state(), TcpState::SynSent);
    assert_eq!(f.expiry_class(), ExpiryClass::TcpIncipient);
    ok(&mut f, In, SYN_ACK, PEER_ISN, GUEST_ISN + 1, TcpState::Established);
    assert_eq!(f.expiry_class(), ExpiryClass::TcpEstablished);
    ok(&mut f, Out, ACK, GUEST_ISN + 1, PEER_ISN + 1, TcpState::Established);
    ok(&mut f, Out, ACK | PSH, GUEST_ISN + 1, PEER_ISN + 1, TcpState::Established);
    ok(&mut f, In, ACK | PSH, PEER_ISN + 1, GUEST_ISN + 101, TcpState::Established);
    // The guest closes first.
    ok(&mut f, Out, FIN_ACK, GUEST_FIN, PEER_ISN + 101, TcpState::FinWait1);
    assert_eq!(f.expiry_class(), ExpiryClass::TcpClosing);
    // An ACK of data before the FIN does not acknowledge the FIN.
    ok(&mut f, In, ACK, PEER_ISN + 101, GUEST_FIN, TcpState::FinWait1);
    ok(&mut f, In, ACK, PEER_ISN + 101, GUEST_FIN + 1, TcpState::FinWait2);
    // The peer still sends data, then closes.
    ok(&mut f, In, ACK | PSH, PEER_ISN + 101, GUEST_FIN + 1, TcpState::FinWait2);
    ok(&mut f, Out, ACK, GUEST_FIN + 1, PEER_FIN, TcpState::FinWait2);
    ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_FIN + 1, TcpState::TimeWait);
    ok(&mut f, Out, ACK, GUEST_FIN + 1, PEER_FIN + 1, TcpState::TimeWait);
    assert_eq!(f.expiry_class(), ExpiryClass::TcpClosing);
    assert_eq!(f.errors(), 0);
    k.assert_clean();
}

#[test]
fn passive_open_and_close() {
    let k = fakekernel::scope();
    let mut f = TcpFlow::new(In, &seg(SYN, PEER_ISN, 0));
    assert_eq!(f.state(), TcpState::Listen);
    assert_eq!(f.expiry_class(), ExpiryClass::TcpIncipient);
    ok(&mut f, Out, SYN_ACK, GUEST_ISN, PEER_ISN + 1, TcpState::SynRcvd);
    assert_eq!(f.expiry_class(), ExpiryClass::TcpIncipient);
    ok(&mut f, In, ACK, PEER_ISN + 1, GUEST_ISN + 1, TcpState::Established);
    ok(&mut f, In, ACK | PSH, PEER_ISN + 1, GUEST_ISN + 1, TcpState::Established);
    ok(&mut f, Out, ACK | PSH, GUEST_ISN + 1, PEER_ISN + 51, TcpState::Established);
    // The peer closes first; the guest acknowledges, sends more, closes.
    ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_ISN + 1, TcpState::CloseWait);
    ok(&mut f, Out, ACK, GUEST_ISN + 1, PEER_FIN + 1, TcpState::CloseWait);
    ok(&mut f, Out, ACK | PSH, GUEST_ISN + 1, PEER_FIN + 1, TcpState::CloseWait);
    ok(&mut f, In, ACK, PEER_FIN + 1, GUEST_FIN, TcpState::CloseWait);
    ok(&mut f, Out, FIN_ACK, GUEST_FIN, PEER_FIN + 1, TcpState::LastAck);
    // An acknowledgement short of the FIN leaves the flow waiting.
    ok(&mut f, In, ACK, PEER_FIN + 1, GUEST_FIN, TcpState::LastAck);
    assert_eq!(step(&mut f, In, ACK, PEER_FIN + 1, GUEST_FIN + 1), TcpVerdict::Closed);
    assert_eq!(f.state(), TcpState::Closed);
    assert_eq!(f.errors(), 0);
    k.assert_clean();
}

#[test]
fn simultaneous_open() {
    let k = fakekernel::scope();
    // The guest's SYN is seen first.
    let mut f = TcpFlow::new(Out, &seg(SYN, GUEST_ISN, 0));
    ok(&mut f, In, SYN, PEER_ISN, 0, TcpState::SynRcvd);
    ok(&mut f, Out, SYN_ACK, GUEST_ISN, PEER_ISN + 1, TcpState::SynRcvd);
    ok(&mut f, In, SYN_ACK, PEER_ISN, GUEST_ISN + 1, TcpState::Established);
    ok(&mut f, Out, ACK, GUEST_ISN + 1, PEER_ISN + 1, TcpState::Established);
    assert_eq!(f.errors(), 0);

    // The peer's SYN is seen first; its plain ACK completes the handshake.
    let mut f = TcpFlow::new(In, &seg(SYN, PEER_ISN, 0));
    ok(&mut f, Out, SYN, GUEST_ISN, 0, TcpState::SynRcvd);
    ok(&mut f, In, SYN_ACK, PEER_ISN, GUEST_ISN + 1, TcpState::Established);
    ok(&mut f, Out, SYN_ACK, GUEST_ISN, PEER_ISN + 1, TcpState::Established);
    ok(&mut f, In, ACK, PEER_ISN + 1, GUEST_ISN + 1, TcpState::Established);
    assert_eq!(f.errors(), 0);
    k.assert_clean();
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let k = fakekernel::scope();
    let mut f = established();
    ok(&mut f, Out, FIN_ACK, GUEST_FIN, PEER_ISN + 1, TcpState::FinWait1);
    // The peer's FIN crossed the guest's: it does not acknowledge it.
    ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_FIN, TcpState::Closing);
    assert_eq!(f.expiry_class(), ExpiryClass::TcpClosing);
    ok(&mut f, Out, ACK, GUEST_FIN + 1, PEER_FIN + 1, TcpState::Closing);
    // A retransmitted peer FIN that still does not acknowledge the guest's.
    ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_FIN, TcpState::Closing);
    ok(&mut f, In, ACK, PEER_FIN + 1, GUEST_FIN + 1, TcpState::TimeWait);
    assert_eq!(f.errors(), 0);

    // A retransmitted peer FIN that now acknowledges the guest's FIN.
    let mut f = flow_in(TcpState::Closing);
    ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_FIN + 1, TcpState::TimeWait);
    assert_eq!(f.errors(), 0);
    k.assert_clean();
}

#[test]
fn fin_ack_sequences_reach_time_wait() {
    let k = fakekernel::scope();
    // The peer's FIN acknowledges the guest's FIN in one segment.
    let mut f = flow_in(TcpState::FinWait1);
    ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_FIN + 1, TcpState::TimeWait);

    // In TIME-WAIT the peer retransmits its FIN (the last ACK was lost) and
    // the guest answers again; the entry stays.
    ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_FIN + 1, TcpState::TimeWait);
    ok(&mut f, Out, ACK, GUEST_FIN + 1, PEER_FIN + 1, TcpState::TimeWait);
    assert_eq!(f.errors(), 0);

    // Through FIN-WAIT-2, with the guest retransmitting its FIN first.
    let mut f = flow_in(TcpState::FinWait1);
    ok(&mut f, Out, FIN_ACK, GUEST_FIN, PEER_ISN + 1, TcpState::FinWait1);
    ok(&mut f, In, ACK, PEER_ISN + 1, GUEST_FIN + 1, TcpState::FinWait2);
    ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_FIN + 1, TcpState::TimeWait);
    assert_eq!(f.errors(), 0);

    // The FIN's acknowledgement is recognised across sequence wrap.
    let mut f = established();
    ok(&mut f, Out, FIN_ACK, u32::MAX, PEER_ISN + 1, TcpState::FinWait1);
    ok(&mut f, In, ACK, PEER_ISN + 1, u32::MAX - 5, TcpState::FinWait1);
    ok(&mut f, In, ACK, PEER_ISN + 1, 0, TcpState::FinWait2);

    // A FIN retransmitted on a later-numbered segment (repacketized data)
    // raises the mark the acknowledgement must pass.
    let mut f = established();
    ok(&mut f, Out, FIN_ACK, GUEST_FIN, PEER_ISN + 1, TcpState::FinWait1);
    ok(&mut f, Out, FIN_ACK, GUEST_FIN + 500, PEER_ISN + 1, TcpState::FinWait1);
    ok(&mut f, In, ACK, PEER_ISN + 1, GUEST_FIN + 200, TcpState::FinWait1);
    ok(&mut f, In, ACK, PEER_ISN + 1, GUEST_FIN + 501, TcpState::FinWait2);
    assert_eq!(f.errors(), 0);
    k.assert_clean();
}

#[test]
fn guest_may_close_from_syn_received() {
    let k = fakekernel::scope();
    let mut f = flow_in(TcpState::SynRcvd);
    ok(&mut f, Out, FIN_ACK, GUEST_ISN + 1, PEER_ISN + 1, TcpState::FinWait1);
    // The peer's ACK of the SYN only: the FIN is still outstanding.
    ok(&mut f, In, ACK, PEER_ISN + 1, GUEST_ISN + 1, TcpState::FinWait1);
    ok(&mut f, In, ACK, PEER_ISN + 1, GUEST_ISN + 2, TcpState::FinWait2);
    assert_eq!(f.errors(), 0);

    // The peer's FIN-ACK completing the handshake closes its half at once.
    let mut f = flow_in(TcpState::SynRcvd);
    ok(&mut f, In, FIN_ACK, PEER_ISN + 1, GUEST_ISN + 1, TcpState::CloseWait);
    assert_eq!(f.errors(), 0);
    k.assert_clean();
}

#[test]
fn rst_in_every_state_closes() {
    let k = fakekernel::scope();
    for state in ALL_STATES {
        for dir in [In, Out] {
            for flags in [RST, RST | ACK] {
                let mut f = flow_in(state);
                assert_eq!(step(&mut f, dir, flags, 0, 0), TcpVerdict::Closed, "{state} {dir:?}");
                assert_eq!(f.state(), TcpState::Closed);
                assert_eq!(f.expiry_class(), ExpiryClass::TcpClosing);
                assert_eq!(f.errors(), 0, "an RST is never an error");
            }
        }
    }
    k.assert_clean();
}

#[test]
fn syn_on_time_wait_starts_a_new_flow() {
    let k = fakekernel::scope();
    for (dir, fresh) in [(Out, TcpState::SynSent), (In, TcpState::Listen)] {
        let mut f = flow_in(TcpState::TimeWait);
        // An error on the old connection does not follow the new one.
        assert_eq!(step(&mut f, In, SYN_ACK, 1, 1), TcpVerdict::Unexpected(TcpState::TimeWait));
        assert_eq!(f.errors(), 1);
        assert_eq!(step(&mut f, dir, SYN, 90_000, 0), TcpVerdict::NewFlow);
        assert_eq!(f.state(), fresh);
        assert_eq!(f.errors(), 0);
        assert_eq!(f.expiry_class(), ExpiryClass::TcpIncipient);
        assert_eq!(f, TcpFlow::new(dir, &seg(SYN, 90_000, 0)));
    }
    k.assert_clean();
}

#[test]
fn syn_on_closed_flow_starts_a_new_flow() {
    let k = fakekernel::scope();
    // Closed by an RST.
    let mut f = flow_in(TcpState::Closed);
    assert_eq!(step(&mut f, Out, SYN, GUEST_ISN + 7, 0), TcpVerdict::NewFlow);
    assert_eq!(f.state(), TcpState::SynSent);
    ok(&mut f, In, SYN_ACK, PEER_ISN, GUEST_ISN + 8, TcpState::Established);

    // Closed by the last ACK of a passive close.
    let mut f = flow_in(TcpState::LastAck);
    assert_eq!(step(&mut f, In, ACK, PEER_FIN + 1, GUEST_FIN + 1), TcpVerdict::Closed);
    assert_eq!(step(&mut f, In, SYN, PEER_ISN + 7, 0), TcpVerdict::NewFlow);
    assert_eq!(f.state(), TcpState::Listen);
    assert_eq!(f.errors(), 0);
    k.assert_clean();
}

#[test]
fn unexpected_segments_are_counted_and_change_nothing() {
    let k = fakekernel::scope();
    use TcpState as S;
    let cases: &[(TcpState, Direction, u8, &str)] = &[
        (S::Closed, Out, ACK, "ACK on a flow that is closed"),
        (S::Closed, In, FIN_ACK, "FIN on a flow that is closed"),
        (S::Closed, In, SYN_ACK, "SYN-ACK on a flow that is closed"),
        (S::SynSent, In, ACK | PSH, "data before the handshake"),
        (S::SynSent, Out, ACK, "the guest's ACK before any SYN-ACK"),
        (S::SynSent, Out, SYN_ACK, "the guest answering its own SYN"),
        (S::Listen, Out, ACK, "ACK before the guest accepted"),
        (S::Listen, In, SYN_ACK, "the peer answering its own SYN"),
        (S::Listen, In, FIN_ACK, "FIN before the handshake"),
        (S::SynRcvd, Out, ACK | PSH, "guest data before the peer's ACK"),
        (S::Established, Out, SYN, "SYN on an established flow"),
        (S::Established, In, SYN, "SYN on an established flow"),
        (S::FinWait2, In, SYN, "SYN on a closing flow"),
        (S::TimeWait, Out, SYN_ACK, "SYN-ACK in TIME-WAIT"),
        (S::Established, In, SYN | FIN, "SYN with FIN"),
        (S::Established, In, SYN | RST, "SYN with RST"),
        (S::Established, In, 0, "no flags"),
        (S::Established, In, FIN, "FIN without ACK"),
        (S::Established, Out, PSH, "data without ACK"),
        (S::FinWait1, In, FIN, "FIN without ACK"),
    ];
    for &(state, dir, flags, what) in cases {
        let mut f = flow_in(state);
        let before = f;
        assert_eq!(step(&mut f, dir, flags, 1, 1), TcpVerdict::Unexpected(state), "{what}");
        assert_eq!(f.state(), state, "{what}");
        assert_eq!(f.errors(), 1, "{what}");
        assert_eq!(f.expiry_class(), before.expiry_class(), "{what}");
        // A second one counts again.
        assert_eq!(step(&mut f, dir, flags, 1, 1), TcpVerdict::Unexpected(state), "{what}");
        assert_eq!(f.errors(), 2, "{what}");
    }

    // Unexpected segments are passed and leave the connection intact: the
    // flow keeps tracking it to the end.
    let mut f = established();
    assert_eq!(step(&mut f, In, SYN, 1, 0), TcpVerdict::Unexpected(S::Established));
    assert_eq!(step(&mut f, In, 0, 1, 0), TcpVerdict::Unexpected(S::Established));
    ok(&mut f, Out, FIN_ACK, GUEST_FIN, PEER_ISN + 1, S::FinWait1);
    ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_FIN + 1, S::TimeWait);
    assert_eq!(f.errors(), 2);
    k.assert_clean();
}

#[test]
fn retransmitted_handshake_segments_are_not_errors() {
    let k = fakekernel::scope();
    let mut f = flow_in(TcpState::SynSent);
    ok(&mut f, Out, SYN, GUEST_ISN, 0, TcpState::SynSent);
    ok(&mut f, Out, SYN, GUEST_ISN, 0, TcpState::SynSent);
    ok(&mut f, In, SYN_ACK, PEER_ISN, GUEST_ISN + 1, TcpState::Established);
    // The guest's ACK was lost; the peer retransmits its SYN-ACK.
    ok(&mut f, In, SYN_ACK, PEER_ISN, GUEST_ISN + 1, TcpState::Established);
    ok(&mut f, Out, ACK, GUEST_ISN + 1, PEER_ISN + 1, TcpState::Established);
    assert_eq!(f.errors(), 0);

    let mut f = flow_in(TcpState::Listen);
    ok(&mut f, In, SYN, PEER_ISN, 0, TcpState::Listen);
    ok(&mut f, Out, SYN_ACK, GUEST_ISN, PEER_ISN + 1, TcpState::SynRcvd);
    // The guest's SYN-ACK was lost: both ends retransmit.
    ok(&mut f, In, SYN, PEER_ISN, 0, TcpState::SynRcvd);
    ok(&mut f, Out, SYN_ACK, GUEST_ISN, PEER_ISN + 1, TcpState::SynRcvd);
    ok(&mut f, In, ACK, PEER_ISN + 1, GUEST_ISN + 1, TcpState::Established);
    assert_eq!(f.errors(), 0);

    // A SYN-ACK from a side that never sent a SYN is not a retransmission:
    // here the flow joined mid-stream, so no SYN was seen at all.
    let mut f = TcpFlow::new(In, &seg(ACK, PEER_ISN, GUEST_ISN));
    let got = step(&mut f, In, SYN_ACK, PEER_ISN, GUEST_ISN);
    assert_eq!(got, TcpVerdict::Unexpected(TcpState::Established));
    assert_eq!(f.errors(), 1);
    k.assert_clean();
}

#[test]
fn expiry_class_in_each_state() {
    let k = fakekernel::scope();
    for state in ALL_STATES {
        let want = match state {
            TcpState::Listen | TcpState::SynSent | TcpState::SynRcvd => ExpiryClass::TcpIncipient,
            TcpState::Established => ExpiryClass::TcpEstablished,
            _ => ExpiryClass::TcpClosing,
        };
        assert_eq!(flow_in(state).expiry_class(), want, "{state}");
    }
    assert_eq!(TcpState::SynRcvd.to_string(), "SYN-RECEIVED");
    assert_eq!(TcpState::TimeWait.to_string(), "TIME-WAIT");
    k.assert_clean();
}

#[test]
fn mid_stream_join() {
    let k = fakekernel::scope();
    // A plain ACK from either side joins as established, without error, and
    // the connection is then tracked to its close.
    for dir in [Out, In] {
        let mut f = TcpFlow::new(dir, &seg(ACK | PSH, 77, 88));
        assert_eq!(f.state(), TcpState::Established);
        assert_eq!(f.expiry_class(), ExpiryClass::TcpEstablished);
        assert_eq!(f.errors(), 0);
        ok(&mut f, dir.reverse(), ACK, 88, 78, TcpState::Established);
        ok(&mut f, Out, FIN_ACK, GUEST_FIN, 1, TcpState::FinWait1);
        ok(&mut f, In, FIN_ACK, PEER_FIN, GUEST_FIN + 1, TcpState::TimeWait);
        assert_eq!(f.errors(), 0);
    }

    // Other first segments take the state they imply.
    let joins: &[(Direction, u8, TcpState, u32)] = &[
        (Out, SYN, TcpState::SynSent, 0),
        (In, SYN, TcpState::Listen, 0),
        (Out, SYN_ACK, TcpState::SynRcvd, 0),
        (In, SYN_ACK, TcpState::Established, 0),
        (Out, FIN_ACK, TcpState::FinWait1, 0),
        (In, FIN_ACK, TcpState::CloseWait, 0),
        (In, RST, TcpState::Closed, 0),
        (Out, RST | ACK, TcpState::Closed, 0),
        (In, FIN, TcpState::Closed, 1),
        (In, SYN | FIN, TcpState::Closed, 1),
        (Out, 0, TcpState::Closed, 1),
    ];
    for &(dir, flags, state, errors) in joins {
        let f = TcpFlow::new(dir, &seg(flags, GUEST_FIN, 1));
        assert_eq!(f.state(), state, "{dir:?} flags {flags:#04x}");
        assert_eq!(f.errors(), errors, "{dir:?} flags {flags:#04x}");
    }

    // Joined at the guest's FIN, the peer's acknowledgement of it is known.
    let mut f = TcpFlow::new(Out, &seg(FIN_ACK, GUEST_FIN, 1));
    ok(&mut f, In, ACK, 1, GUEST_FIN, TcpState::FinWait1);
    ok(&mut f, In, ACK, 1, GUEST_FIN + 1, TcpState::FinWait2);
    k.assert_clean();
}

/// A flow packed into one word and unpacked is the same flow, in every
/// state, and after a segment it did not expect (the error count and the
/// FIN sequence number survive too): what a connection shared by two
/// directions stores.
#[test]
fn packing_keeps_every_state_and_field() {
    for state in ALL_STATES {
        let mut f = flow_in(state);
        assert_eq!(TcpFlow::unpack(f.pack()), f, "{state:?}");
        assert_eq!(TcpFlow::state_of(f.pack()), state);
        // An unexpected segment: one error more.
        let _ = step(&mut f, In, SYN, PEER_ISN + 99, 0);
        let back = TcpFlow::unpack(f.pack());
        assert_eq!(back, f, "{state:?} after an error");
        assert_eq!(back.errors(), f.errors());
    }
    let f = flow_in(TcpState::FinWait1);
    let mut g = TcpFlow::unpack(f.pack());
    // The unpacked flow goes on exactly as the original would.
    let mut h = f;
    assert_eq!(
        step(&mut g, In, ACK, PEER_ISN + 1, GUEST_FIN + 1),
        step(&mut h, In, ACK, PEER_ISN + 1, GUEST_FIN + 1)
    );
    assert_eq!(g, h);
}

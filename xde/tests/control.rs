//! The portable command handler over `fakekernel`: the contract's checks
//! in order, state changes and their refusals, and arbitrary bytes never
//! panicking or leaking kernel memory.

use opte_api::cmd::{decode, encode, errno};
use opte_api::{API_VERSION, MAX_REQ_LEN, MIN_RESP_LEN, OpteCmd, OpteCmdIoctl, OpteError};
use oxide_vpc::api::*;
use oxide_vpc::cmd::*;
use oxide_vpc::engine::PortLimits;
use xde::control::XdeCtl;

fn cfg() -> VpcCfg {
    VpcCfg {
        guest_mac: "a8:40:25:f7:00:05".parse().unwrap(),
        gateway_mac: "a8:40:25:ff:77:77".parse().unwrap(),
        vni: opte_api::Vni::new(7777).unwrap(),
        phys_ip: "fd77::a".parse().unwrap(),
        mtu: 1500,
        ipv4: Some(Ipv4Cfg {
            vpc_subnet: "172.30.0.0/22".parse().unwrap(),
            private_ip: "172.30.0.5".parse().unwrap(),
            gateway_ip: "172.30.0.1".parse().unwrap(),
            external: Default::default(),
        }),
        ipv6: None,
        dhcp: Default::default(),
        attached_subnets: vec![],
        transit: vec![],
        peerings: vec![],
    }
}

fn limits() -> PortLimits {
    PortLimits { uft: 64, lft: 64, tcp: 64 }
}

/// Run `cmd` with request `req` as a well-behaved client would.
fn call<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
    x: &XdeCtl,
    cmd: OpteCmd,
    req: &Req,
) -> Result<Resp, OpteError> {
    let body = encode(req).unwrap();
    let hdr = OpteCmdIoctl::new(cmd, body.len() as u64, 1 << 20);
    x.handle(&hdr, &body).map(|r| decode(cmd, &r).unwrap())
}

fn with_port(x: &XdeCtl) {
    let u = SetXdeUnderlayReq { u1: "igb0".into(), u2: "igb1".into() };
    call::<_, ()>(x, OpteCmd::SetXdeUnderlay, &u).unwrap();
    call::<_, ()>(x, OpteCmd::CreateXde, &CreateXdeReq { name: "xde0".into(), cfg: cfg() })
        .unwrap();
}

#[test]
fn checks_run_in_contract_order() {
    let k = fakekernel::scope();
    let x = XdeCtl::new(limits());
    // A version mismatch wins over everything else that is wrong.
    let mut h = OpteCmdIoctl::new(OpteCmd::CreateXde, MAX_REQ_LEN + 1, 0);
    h.api_version = 7;
    h.flags = 1;
    assert_eq!(
        x.handle(&h, &[]),
        Err(OpteError::VersionMismatch { client: 7, driver: API_VERSION })
    );
    h.api_version = API_VERSION;
    assert!(matches!(x.handle(&h, &[]), Err(OpteError::RequestTooLarge { .. })));
    h.req_len = 0;
    h.cmd = 0;
    assert_eq!(x.handle(&h, &[]), Err(OpteError::UnknownCommand(0)));
    h.cmd = OpteCmd::CreateXde as u32;
    assert!(matches!(x.handle(&h, &[1]), Err(OpteError::Malformed { .. })), "length mismatch");
    assert_eq!(x.handle(&h, &[]), Err(OpteError::BadFlags(1)));
    h.flags = 0;
    assert_eq!(x.handle(&h, &[]), Err(OpteError::ReplyTooLarge { needed: MIN_RESP_LEN }));
    h.resp_len = MIN_RESP_LEN;
    assert!(matches!(x.handle(&h, &[]), Err(OpteError::Malformed { .. })));
    // The version command answers any version.
    let mut v = OpteCmdIoctl::new(OpteCmd::ApiVersion, 0, 64);
    v.api_version = 12345;
    assert_eq!(decode::<u64>(OpteCmd::ApiVersion, &x.handle(&v, &[]).unwrap()), Ok(API_VERSION));
    drop(x);
    k.assert_clean();
}

#[test]
fn execute_follows_the_reply_protocol() {
    let k = fakekernel::scope();
    let x = XdeCtl::new(limits());
    with_port(&x);
    // Success: the reply and its length.
    let mut h = OpteCmdIoctl::new(OpteCmd::ListPorts, 0, MIN_RESP_LEN);
    let out = x.execute(&mut h, &[]);
    assert_eq!(out.errno, 0);
    assert_eq!(h.resp_len_needed, out.body.len() as u64);
    let r: ListPortsResp = decode(OpteCmd::ListPorts, &out.body).unwrap();
    assert_eq!(r.ports.len(), 1);
    // Too small: the size needed, no body.
    let mut h = OpteCmdIoctl::new(OpteCmd::ListPorts, 0, 4);
    let out = x.execute(&mut h, &[]);
    assert_eq!((out.errno, out.body.len()), (errno::ENOBUFS, 0));
    assert_eq!(h.resp_len_needed, encode(&r).unwrap().len() as u64);
    // An error: its encoding.
    let body = encode(&PortReq { port: "nope0".into() }).unwrap();
    let mut h = OpteCmdIoctl::new(OpteCmd::Stats, body.len() as u64, MIN_RESP_LEN);
    let out = x.execute(&mut h, &body);
    assert_eq!(out.errno, errno::ENOENT);
    assert_eq!(
        decode::<OpteError>(OpteCmd::Stats, &out.body),
        Ok(OpteError::NoSuchPort("nope0".into()))
    );
    assert_eq!(h.resp_len_needed, out.body.len() as u64);
    drop(x);
    k.assert_clean();
}

#[test]
fn registry_rules() {
    let k = fakekernel::scope();
    let x = XdeCtl::new(limits());
    let create = |name: &str| {
        call::<_, ()>(&x, OpteCmd::CreateXde, &CreateXdeReq { name: name.into(), cfg: cfg() })
    };
    assert_eq!(create("xde0"), Err(OpteError::NoUnderlay));
    with_port(&x);
    assert_eq!(create("xde0"), Err(OpteError::PortExists("xde0".into())));
    assert!(matches!(create("igb0"), Err(OpteError::Exists(_))), "an underlay link's name");
    assert!(matches!(create("x/0"), Err(OpteError::BadName { .. })));
    let mut bad = cfg();
    bad.mtu = 10;
    let e = call::<_, ()>(&x, OpteCmd::CreateXde, &CreateXdeReq { name: "xde1".into(), cfg: bad });
    assert!(matches!(&e, Err(OpteError::Invalid(m)) if m.contains("MTU 10")), "{e:?}");
    assert_eq!(
        call::<_, ()>(&x, OpteCmd::ClearXdeUnderlay, &()),
        Err(OpteError::UnderlayInUse { ports: 1 })
    );
    assert_eq!(x.ports().len(), 1);
    call::<_, ()>(&x, OpteCmd::DeleteXde, &DeleteXdeReq { name: "xde0".into() }).unwrap();
    assert_eq!(
        call::<_, ()>(&x, OpteCmd::DeleteXde, &DeleteXdeReq { name: "xde0".into() }),
        Err(OpteError::NoSuchPort("xde0".into()))
    );
    call::<_, ()>(&x, OpteCmd::ClearXdeUnderlay, &()).unwrap();
    drop(x);
    k.assert_clean();
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Every command with random bytes, random cuts of a valid body, and
/// random byte flips in one: an error or a reply, never a panic, and no
/// kernel memory left behind.
#[test]
fn arbitrary_bytes_never_panic_or_leak() {
    let k = fakekernel::scope();
    let x = XdeCtl::new(limits());
    with_port(&x);
    let valid: Vec<(OpteCmd, Vec<u8>)> = vec![
        (OpteCmd::CreateXde, encode(&CreateXdeReq { name: "xde9".into(), cfg: cfg() }).unwrap()),
        (
            OpteCmd::AddFwRule,
            encode(&AddFwRuleReq {
                port: "xde0".into(),
                rule: "dir=in action=allow priority=3 protocol=TCP port=22".parse().unwrap(),
            })
            .unwrap(),
        ),
        (
            OpteCmd::AddPeering,
            encode(&AddPeeringReq {
                port: "xde0".into(),
                peering: Peering {
                    vni: opte_api::Vni::new(9).unwrap(),
                    subnets: vec!["10.9.0.0/16".parse().unwrap()],
                },
            })
            .unwrap(),
        ),
        (
            OpteCmd::Trace,
            encode(&TraceReq {
                port: "xde0".into(),
                dir: opte_api::Direction::Out,
                frame: vec![0xff; 60],
            })
            .unwrap(),
        ),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..400 {
        for cmd in OpteCmd::ALL {
            let len = (rng.next() % 96) as usize;
            let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let hdr = OpteCmdIoctl::new(*cmd, body.len() as u64, 1 << 16);
            let _ = x.handle(&hdr, &body);
        }
        let (cmd, v) = &valid[round % valid.len()];
        let cut = (rng.next() as usize) % (v.len() + 1);
        let mut body = v[..cut].to_vec();
        if let Some(b) = body.get_mut((rng.next() as usize) % (cut + 1)) {
            *b ^= 1 << (rng.next() % 8);
        }
        let hdr = OpteCmdIoctl::new(*cmd, body.len() as u64, 1 << 16);
        let _ = x.handle(&hdr, &body);
    }
    drop(x);
    k.assert_clean();
}

/// 4096 firewall rules of the largest encoding fit in one request.
#[test]
fn the_request_limit_holds_a_full_rule_set() {
    let widest = FirewallRule {
        direction: opte_api::Direction::In,
        priority: u16::MAX,
        action: FwAction::Allow,
        hosts: FwHosts::Subnet("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120".parse().unwrap()),
        protocol: FwProtocol::Tcp,
        ports: vec![PortRange { first: 65000, last: 65535 }; limits::MAX_FW_PORTS],
    };
    let req = SetFwRulesReq { port: "x".repeat(31), rules: vec![widest; limits::MAX_FW_RULES] };
    let len = encode(&req).unwrap().len() as u64;
    assert!(len <= MAX_REQ_LEN, "{len} > {MAX_REQ_LEN}");
    assert!(len > MAX_REQ_LEN / 4, "the limit is not absurdly large: {len}");
}

#![no_main]
//! Fuzz the driver's command handler: arbitrary bytes as a command's
//! header fields and request body, against a driver with an underlay and
//! one port. Every input must be answered (a reply or an error) without
//! panicking, and leave no kernel memory behind once the driver is gone.
//!
//! Input: byte 0 picks the command (an index into the command list, or
//! past it, a raw code from bytes 1-4); byte 1's bits lie in the header
//! (another API version, a wrong length, flags, a tiny reply buffer); the
//! rest is the body.

use libfuzzer_sys::fuzz_target;
use opte_api::cmd::encode;
use opte_api::{OpteCmd, OpteCmdIoctl};
use oxide_vpc::api::{Ipv4Cfg, VpcCfg};
use oxide_vpc::cmd::{CreateXdeReq, SetXdeUnderlayReq};
use oxide_vpc::engine::PortLimits;
use xde::control::XdeCtl;

fn cfg() -> Option<VpcCfg> {
    Some(VpcCfg {
        guest_mac: "a8:40:25:f7:00:05".parse().ok()?,
        gateway_mac: "a8:40:25:ff:77:77".parse().ok()?,
        vni: opte_api::Vni::new(7777).ok()?,
        phys_ip: "fd77::a".parse().ok()?,
        mtu: 1500,
        ipv4: Some(Ipv4Cfg {
            vpc_subnet: "172.30.0.0/22".parse().ok()?,
            private_ip: "172.30.0.5".parse().ok()?,
            gateway_ip: "172.30.0.1".parse().ok()?,
            external: Default::default(),
        }),
        ipv6: None,
        dhcp: Default::default(),
        attached_subnets: vec![],
        transit: vec![],
        peerings: vec![],
    })
}

/// A driver with underlay igb0/igb1 and port xde0.
fn driver() -> XdeCtl {
    let x = XdeCtl::new(PortLimits { uft: 64, lft: 64, tcp: 64 });
    let setup = [
        (
            OpteCmd::SetXdeUnderlay,
            encode(&SetXdeUnderlayReq { u1: "igb0".into(), u2: "igb1".into() }),
        ),
        (
            OpteCmd::CreateXde,
            encode(&CreateXdeReq { name: "xde0".into(), cfg: cfg().expect("valid config") }),
        ),
    ];
    for (cmd, body) in setup {
        let body = body.expect("encodable");
        let h = OpteCmdIoctl::new(cmd, body.len() as u64, 1 << 16);
        x.handle(&h, &body).expect("setup command");
    }
    x
}

fuzz_target!(|data: &[u8]| {
    let k = fakekernel::scope();
    {
        let x = driver();
        let Some((&pick, rest)) = data.split_first() else { return };
        let (code, rest) = match OpteCmd::ALL.get(usize::from(pick)) {
            Some(c) => (*c as u32, rest),
            None => match rest.split_first_chunk::<4>() {
                Some((c, r)) => (u32::from_le_bytes(*c), r),
                None => return,
            },
        };
        let (lies, body) = rest.split_first().map(|(l, b)| (*l, b)).unwrap_or((0, &[]));
        let mut h = OpteCmdIoctl::new(OpteCmd::ApiVersion, body.len() as u64, 1 << 16);
        h.cmd = code;
        if lies & 1 != 0 {
            h.api_version = h.api_version.wrapping_add(u64::from(lies));
        }
        if lies & 2 != 0 {
            h.req_len = h.req_len.wrapping_add(u64::from(lies >> 4));
        }
        if lies & 4 != 0 {
            h.flags = u32::from(lies);
        }
        if lies & 8 != 0 {
            h.resp_len = u64::from(lies >> 4);
        }
        let mut out_hdr = h;
        let out = x.execute(&mut out_hdr, body);
        if out.errno == 0 {
            assert!(out.body.len() as u64 <= h.resp_len, "a reply fits its buffer");
        }
    }
    k.assert_clean();
});

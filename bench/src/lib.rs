//! Packets for the benchmarks, and the scenario names they report under.
//!
//! Scenario names follow `parse/ULP-FastPath/{V4|V6}-{Tcp|Udp}-{OUT|IN}-{0B|1400B}`:
//! OUT is a guest frame (what a guest sends), IN an underlay frame (Geneve
//! over IPv6 carrying the guest packet), so results line up with other
//! implementations' benchmarks of the same shape.

pub mod alloc_count;
pub mod engine;
pub mod flow_table;
pub mod vpc;

use opte::ddi::MsgBlk;
use opte::packet::{
    Encap, EtherHdr, FrameBuilder, GeneveHdr, GeneveOptions, Ipv4Hdr, Ipv6Hdr, L3, L4, TcpHdr,
    UdpHdr,
};
use opte_api::{Ipv4Addr, Ipv6Addr, MacAddr, Vni};

/// IP family of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// Transport protocol of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// Direction: `Out` is a guest frame, `In` an underlay (Geneve) frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Out,
    In,
}

impl Dir {
    /// The engine's direction.
    pub const fn direction(self) -> opte::engine::Direction {
        match self {
            Self::Out => opte::engine::Direction::Out,
            Self::In => opte::engine::Direction::In,
        }
    }
}

/// One benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    pub family: Family,
    pub proto: Proto,
    pub dir: Dir,
    pub body_len: usize,
}

impl Scenario {
    /// Every combination: 2 families x 2 protocols x 2 directions x 2 sizes.
    pub fn all() -> Vec<Scenario> {
        let mut v = Vec::new();
        for family in [Family::V4, Family::V6] {
            for proto in [Proto::Tcp, Proto::Udp] {
                for dir in [Dir::Out, Dir::In] {
                    for body_len in [0, 1400] {
                        v.push(Scenario { family, proto, dir, body_len });
                    }
                }
            }
        }
        v
    }

    /// The name after `parse/`, e.g. `ULP-FastPath/V4-Tcp-OUT-0B`.
    pub fn name(&self) -> String {
        format!("ULP-FastPath/{}", self.suffix())
    }

    /// The scenario part of a name, e.g. `V4-Tcp-OUT-0B`.
    pub fn suffix(&self) -> String {
        format!(
            "{}-{}-{}-{}B",
            match self.family {
                Family::V4 => "V4",
                Family::V6 => "V6",
            },
            match self.proto {
                Proto::Tcp => "Tcp",
                Proto::Udp => "Udp",
            },
            match self.dir {
                Dir::Out => "OUT",
                Dir::In => "IN",
            },
            self.body_len
        )
    }

    /// The frame's headers.
    pub fn frame(&self) -> FrameBuilder {
        let mut b = FrameBuilder::new(EtherHdr {
            dst: MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xff, 0x77, 0x77]),
            src: MacAddr::from_bytes([0xa8, 0x40, 0x25, 0xf7, 0x00, 0x01]),
            ether_type: 0,
        });
        b.l3 = Some(match self.family {
            Family::V4 => L3::Ipv4(Ipv4Hdr {
                tos: 0,
                total_len: 0,
                ident: 7,
                flags_frag: Ipv4Hdr::DF,
                ttl: 64,
                proto: 0,
                csum: 0,
                src: Ipv4Addr::new(172, 30, 0, 5),
                dst: Ipv4Addr::new(10, 0, 0, 9),
                opt_len: 0,
                options: [0; 40],
            }),
            Family::V6 => L3::Ipv6(ipv6(
                "fd00::5".parse().unwrap_or(Ipv6Addr::LOCALHOST),
                "fd00::9".parse().unwrap_or(Ipv6Addr::LOCALHOST),
            )),
        });
        b.l4 = Some(match self.proto {
            Proto::Tcp => L4::Tcp(TcpHdr {
                src_port: 40000,
                dst_port: 443,
                seq: 1,
                ack: 1,
                reserved: 0,
                flags: opte::packet::tcp::tcp_flags::ACK,
                window: 64000,
                csum: 0,
                urgent: 0,
                opt_len: 0,
                options: [0; 40],
            }),
            Proto::Udp => L4::Udp(UdpHdr { src_port: 40000, dst_port: 53, len: 0, csum: 0 }),
        });
        if self.dir == Dir::In {
            b.outer = Some(Encap {
                eth: EtherHdr {
                    dst: MacAddr::from_bytes([0xa8, 0x40, 0x25, 0, 0, 2]),
                    src: MacAddr::from_bytes([0xa8, 0x40, 0x25, 0, 0, 1]),
                    ether_type: 0,
                },
                ip6: ipv6(
                    "fd00:1122:3344:101::1".parse().unwrap_or(Ipv6Addr::LOCALHOST),
                    "fd00:1122:3344:102::1".parse().unwrap_or(Ipv6Addr::LOCALHOST),
                ),
                udp: UdpHdr { src_port: 51234, dst_port: 6081, len: 0, csum: 0 },
                geneve: GeneveHdr::new(
                    Vni::new(0x00ab_cdef).unwrap_or_default(),
                    GeneveOptions::default(),
                ),
            });
        }
        b
    }

    /// The frame as one block, as a NIC or guest hands it over.
    pub fn mblk(&self) -> MsgBlk {
        let body = vec![0x5a; self.body_len];
        match self.frame().to_mblk(0, &body) {
            Ok(m) => m,
            Err(e) => panic!("benchmark packet allocation failed: {e:?}"),
        }
    }
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr) -> Ipv6Hdr {
    Ipv6Hdr { hop_limit: 64, src, dst, ..Ipv6Hdr::EMPTY }
}

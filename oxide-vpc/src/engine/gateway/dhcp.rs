//! The gateway's DHCPv4 server (RFC 2131, options RFC 2132): it hands
//! the guest its private IPv4 address and nothing else.
//!
//! | request | answer |
//! | --- | --- |
//! | DISCOVER | OFFER of the private IP |
//! | REQUEST for the private IP (option 50, or `ciaddr` when renewing) | ACK |
//! | REQUEST for any other address, or naming none | NAK |
//! | REQUEST naming another server (option 54) | none: the client chose another offer (a counted action drop) |
//! | INFORM | ACK with the parameters and no address or lease (RFC 2131 4.3.5) |
//! | DECLINE, RELEASE, anything else from port 68 to 67 | denied by a rule |
//!
//! OFFER and ACK carry, besides the message type (53): server identifier
//! (54, the gateway IP), lease time (51), subnet mask 255.255.255.255
//! (1), router (3), classless static routes (121, RFC 3442: the gateway
//! /32 on-link, then the default route through it: with a /32 mask the
//! client must learn that the gateway is reachable at all), DNS servers
//! (6), host name (12), domain name (15), domain search list (119, RFC
//! 3397, compressed), interface MTU (26), and the client's identifier
//! (61) when it sent one (RFC 6842). Options longer than 255 bytes are
//! split into consecutive instances (RFC 3396). The message is padded to
//! the 300-byte BOOTP minimum (RFC 1542 2.1).
//!
//! Addressing (RFC 2131 4.1, with `giaddr` zero: a relayed request is not
//! answered): a NAK is broadcast; a reply to a client with `ciaddr` set
//! goes to `ciaddr`; otherwise a client that set the broadcast flag gets
//! a broadcast (255.255.255.255, ff:ff:ff:ff:ff:ff), and any other a
//! unicast to the offered address and its MAC. Replies come from the
//! gateway MAC and IP, UDP port 67 to 68.
//!
//! The request is read from the message with a bounded walk: at most
//! [`MAX_DHCP_OPTIONS`] options (pads not counted; each pass consumes a
//! byte of an area no longer than the datagram) over the options field
//! and, when option 52 says so, the `file` and `sname` fields. An option
//! running past its area makes the request malformed: a counted action
//! drop, no reply.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;

use opte::ddi::MsgBlk;
use opte::engine::action::{Action, ActionError, HairpinAction};
use opte::engine::predicate::{
    MAX_DHCP_OPTIONS, MatchCtx, PortMatch, Predicate, dhcp_msg_type, dhcp_port,
};
use opte::engine::rule::RuleSpec;
use opte::packet::ip4::protocol;
use opte::packet::{EtherHdr, FrameBuilder, L3, L4, UdpHdr};
use opte_api::MacAddr;

use super::{PRIO_HAIRPIN, PRIO_REFUSE, UdpPayload, dns_name};
use crate::api::{Ipv4Cfg, VpcCfg};

/// BOOTP message op codes (RFC 2131 2).
const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
/// Length of the BOOTP fixed part before the magic cookie.
const FIXED_LEN: usize = 236;
/// The magic cookie that starts the options (RFC 2131 3).
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Where the options start.
const OPTIONS_AT: usize = FIXED_LEN + 4;
/// Where `sname` and `file` lie, and their lengths.
const SNAME: (usize, usize) = (44, 64);
const FILE: (usize, usize) = (108, 128);
/// The smallest BOOTP message (RFC 1542 2.1).
const MIN_MESSAGE: usize = 300;
/// The broadcast bit of `flags` (RFC 2131 2).
const FLAG_BROADCAST: u16 = 0x8000;
/// Bytes of `chaddr`.
const CHADDR_LEN: usize = 16;
/// Longest option body (one length byte).
const MAX_OPTION: usize = 255;

/// DHCP option codes used here (RFC 2132, RFC 3397, RFC 3442).
pub mod opt {
    /// Padding (one byte, no length).
    pub const PAD: u8 = 0;
    /// Subnet mask.
    pub const SUBNET_MASK: u8 = 1;
    /// Routers.
    pub const ROUTER: u8 = 3;
    /// DNS servers.
    pub const DNS_SERVERS: u8 = 6;
    /// Host name.
    pub const HOSTNAME: u8 = 12;
    /// Domain name.
    pub const DOMAIN_NAME: u8 = 15;
    /// Interface MTU.
    pub const MTU: u8 = 26;
    /// The address a client asks for.
    pub const REQUESTED_IP: u8 = 50;
    /// Lease time in seconds.
    pub const LEASE_TIME: u8 = 51;
    /// `file` and/or `sname` hold options too.
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type.
    pub const MSG_TYPE: u8 = 53;
    /// Server identifier.
    pub const SERVER_ID: u8 = 54;
    /// Client identifier.
    pub const CLIENT_ID: u8 = 61;
    /// Domain search list (RFC 3397).
    pub const DOMAIN_SEARCH: u8 = 119;
    /// Classless static routes (RFC 3442).
    pub const CLASSLESS_ROUTES: u8 = 121;
    /// End of the options.
    pub const END: u8 = 255;
}

/// The DHCP rules: a hairpin per answered message type, and a deny for
/// every other client message.
///
/// Each hairpin rule tests the header fields first and the message type
/// (a walk over the options) last. One rule for all three types would
/// not walk less: `Any` of the type predicates walks once per type it
/// tries.
pub(super) fn rules(cfg: &VpcCfg, v4: &Ipv4Cfg, guest: &Predicate) -> Vec<RuleSpec> {
    let server = Arc::new(DhcpServer::new(cfg, v4));
    let client_to_server = [
        Predicate::IpProto(protocol::UDP),
        Predicate::SrcPort(PortMatch::Exact(dhcp_port::CLIENT)),
        Predicate::DstPort(PortMatch::Exact(dhcp_port::SERVER)),
    ];
    let mut v = Vec::new();
    for ty in [dhcp_msg_type::DISCOVER, dhcp_msg_type::REQUEST, dhcp_msg_type::INFORM] {
        let action = DhcpReply { request: ty, server: Arc::clone(&server) };
        // Cheapest first: header fields, then the walk over the body.
        let mut r = RuleSpec::new(PRIO_HAIRPIN, Action::Hairpin(Arc::new(action)));
        r.predicates.extend(client_to_server.iter().cloned());
        r.predicates.push(guest.clone());
        r.predicates.push(Predicate::DhcpMsgType(ty));
        v.push(r);
    }
    let mut deny = RuleSpec::new(PRIO_REFUSE, Action::Deny);
    deny.predicates.extend(client_to_server);
    v.push(deny);
    v
}

/// What the server hands out, with the options that do not depend on the
/// request encoded once.
struct DhcpServer {
    gateway_mac: MacAddr,
    gateway_ip: Ipv4Addr,
    client_ip: Ipv4Addr,
    lease_secs: u32,
    /// Options 1, 3, 121, 6, 12, 15, 119 and 26, encoded.
    params: Vec<u8>,
}

impl DhcpServer {
    fn new(cfg: &VpcCfg, v4: &Ipv4Cfg) -> Self {
        let gw = v4.gateway_ip.octets();
        let mut p = Vec::new();
        put_option(&mut p, opt::SUBNET_MASK, &[255; 4]);
        put_option(&mut p, opt::ROUTER, &gw);
        // RFC 3442: width, the significant octets of the destination,
        // the router. The gateway itself is on-link (router 0.0.0.0);
        // everything else goes through it.
        let mut routes = Vec::with_capacity(14);
        routes.push(32);
        routes.extend_from_slice(&gw);
        routes.extend_from_slice(&[0; 4]);
        routes.push(0);
        routes.extend_from_slice(&gw);
        put_option(&mut p, opt::CLASSLESS_ROUTES, &routes);
        let d = &cfg.dhcp;
        let dns: Vec<u8> = d.dns4.iter().flat_map(|a| a.octets()).collect();
        put_option(&mut p, opt::DNS_SERVERS, &dns);
        if let Some(h) = &d.hostname {
            put_option(&mut p, opt::HOSTNAME, h.as_bytes());
        }
        if let Some(dom) = &d.domain {
            put_option(&mut p, opt::DOMAIN_NAME, dom.as_bytes());
        }
        let search = dns_name::encode_list_compressed(d.search.iter().map(|s| s.as_str()));
        put_option(&mut p, opt::DOMAIN_SEARCH, &search);
        put_option(&mut p, opt::MTU, &cfg.mtu.to_be_bytes());
        Self {
            gateway_mac: cfg.gateway_mac,
            gateway_ip: v4.gateway_ip,
            client_ip: v4.private_ip,
            lease_secs: cfg.dhcp.lease(),
            params: p,
        }
    }
}

/// Append option `code` with `data`, split into instances of at most 255
/// bytes (RFC 3396); nothing for empty data.
fn put_option(out: &mut Vec<u8>, code: u8, data: &[u8]) {
    for chunk in data.chunks(MAX_OPTION) {
        out.push(code);
        out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(chunk);
    }
}

/// Write `bytes` at offset `at` of `m`, which the caller has made long
/// enough (nothing is written past its end).
fn put_at<const N: usize>(m: &mut [u8], at: usize, bytes: [u8; N]) {
    if let Some(field) = m.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<N>) {
        *field = bytes;
    }
}

/// What the server answers a request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Offer,
    Ack,
    Nak,
    /// The ACK to an INFORM: parameters only.
    InformAck,
}

/// The fields of a client's request the reply needs.
struct Request<'a> {
    htype: u8,
    hlen: u8,
    xid: [u8; 4],
    flags: u16,
    ciaddr: Ipv4Addr,
    chaddr: [u8; CHADDR_LEN],
    requested_ip: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
    /// Option 61's body (the first instance).
    client_id: Option<&'a [u8]>,
}

/// The `N` bytes at `at` of a message at least [`OPTIONS_AT`] bytes long.
fn field<const N: usize>(m: &[u8], at: usize) -> Result<[u8; N], ActionError> {
    m.get(at..)
        .and_then(<[u8]>::first_chunk::<N>)
        .copied()
        .ok_or(ActionError::Reply("DHCP message truncated"))
}

impl<'a> Request<'a> {
    /// Read a request from the DHCP message `m` (the UDP payload).
    fn parse(m: &'a [u8]) -> Result<Self, ActionError> {
        if m.len() < OPTIONS_AT {
            return Err(ActionError::Reply("DHCP message truncated"));
        }
        let [op, htype, hlen, _hops] = field(m, 0)?;
        if op != BOOTREQUEST {
            return Err(ActionError::NotApplicable("DHCP message is not a request"));
        }
        if usize::from(hlen) > CHADDR_LEN {
            return Err(ActionError::Reply("DHCP hardware address too long"));
        }
        if field::<4>(m, 24)? != [0; 4] {
            return Err(ActionError::NotApplicable("relayed DHCP request"));
        }
        if field::<4>(m, FIXED_LEN)? != MAGIC_COOKIE {
            return Err(ActionError::Reply("DHCP magic cookie missing"));
        }
        let mut req = Self {
            htype,
            hlen,
            xid: field(m, 4)?,
            flags: u16::from_be_bytes(field(m, 10)?),
            ciaddr: Ipv4Addr::from(field::<4>(m, 12)?),
            chaddr: field(m, 28)?,
            requested_ip: None,
            server_id: None,
            client_id: None,
        };
        let mut budget = MAX_DHCP_OPTIONS;
        let overload = req.walk(m.get(OPTIONS_AT..).unwrap_or_default(), &mut budget)?;
        // RFC 2131 4.1: the options field, then `file`, then `sname`.
        for (bit, (at, len)) in [(1, FILE), (2, SNAME)] {
            if overload & bit != 0 {
                let area = m.get(at..at.saturating_add(len)).unwrap_or_default();
                req.walk(area, &mut budget)?;
            }
        }
        Ok(req)
    }

    /// Walk the options in `area`, keeping those the reply needs; returns
    /// option 52's value (0 when absent).
    fn walk(&mut self, area: &'a [u8], budget: &mut usize) -> Result<u8, ActionError> {
        let malformed = ActionError::Reply("malformed DHCP option");
        let mut overload = 0;
        let mut rest = area;
        // Each pass consumes at least one byte of the area.
        while let Some((&code, after_code)) = rest.split_first() {
            rest = after_code;
            match code {
                opt::PAD => continue,
                opt::END => break,
                _ => {}
            }
            *budget = budget.checked_sub(1).ok_or(ActionError::Reply("too many DHCP options"))?;
            let (&len, after_len) = rest.split_first().ok_or(malformed.clone())?;
            let (body, after) =
                after_len.split_at_checked(usize::from(len)).ok_or(malformed.clone())?;
            rest = after;
            match (code, body) {
                (opt::REQUESTED_IP, &[a, b, c, d]) => {
                    self.requested_ip = Some(Ipv4Addr::new(a, b, c, d));
                }
                (opt::SERVER_ID, &[a, b, c, d]) => self.server_id = Some(Ipv4Addr::new(a, b, c, d)),
                (opt::OVERLOAD, &[v]) => overload = v & 3,
                (opt::CLIENT_ID, &[_, _, ..]) if self.client_id.is_none() => {
                    self.client_id = Some(body);
                }
                (opt::REQUESTED_IP | opt::SERVER_ID | opt::OVERLOAD, _) => return Err(malformed),
                _ => {}
            }
        }
        Ok(overload)
    }
}

/// Answer one DHCP message type.
pub struct DhcpReply {
    /// The message type this rule answers.
    request: u8,
    server: Arc<DhcpServer>,
}

impl fmt::Display for DhcpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = dhcp_msg_type::name(self.request).unwrap_or("?");
        write!(f, "dhcp-reply({name}) {}", self.server.client_ip)
    }
}

impl DhcpReply {
    /// What to answer `req` with.
    fn answer(&self, req: &Request<'_>) -> Result<Answer, ActionError> {
        let s = &self.server;
        match self.request {
            dhcp_msg_type::DISCOVER => Ok(Answer::Offer),
            dhcp_msg_type::INFORM => Ok(Answer::InformAck),
            dhcp_msg_type::REQUEST => {
                if req.server_id.is_some_and(|id| id != s.gateway_ip) {
                    return Err(ActionError::NotApplicable("DHCP REQUEST for another server"));
                }
                let ciaddr = Some(req.ciaddr).filter(|a| !a.is_unspecified());
                match req.requested_ip.or(ciaddr) {
                    Some(ip) if ip == s.client_ip => Ok(Answer::Ack),
                    _ => Ok(Answer::Nak),
                }
            }
            _ => Err(ActionError::NotApplicable("DHCP message type not answered")),
        }
    }

    /// The reply's DHCP message (the UDP payload).
    fn message(&self, req: &Request<'_>, answer: Answer) -> Result<Vec<u8>, ActionError> {
        let s = &self.server;
        let cap = OPTIONS_AT + 3 + 6 + 6 + 2 + MAX_OPTION + s.params.len() + 1;
        let mut m = Vec::new();
        m.try_reserve_exact(cap.max(MIN_MESSAGE))
            .map_err(|_| ActionError::Reply("no memory for the reply"))?;
        let (ciaddr, yiaddr) = match answer {
            Answer::Offer => (Ipv4Addr::UNSPECIFIED, s.client_ip),
            Answer::Nak => (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
            Answer::Ack => (req.ciaddr, s.client_ip),
            Answer::InformAck => (req.ciaddr, Ipv4Addr::UNSPECIFIED),
        };
        // The fixed part and cookie. The fields left zero: secs, siaddr
        // (no next server), giaddr (not relayed), sname and file.
        m.resize(OPTIONS_AT, 0);
        put_at(&mut m, 0, [BOOTREPLY, req.htype, req.hlen, 0]);
        put_at(&mut m, 4, req.xid);
        put_at(&mut m, 10, req.flags.to_be_bytes());
        put_at(&mut m, 12, ciaddr.octets());
        put_at(&mut m, 16, yiaddr.octets());
        put_at(&mut m, 28, req.chaddr);
        put_at(&mut m, FIXED_LEN, MAGIC_COOKIE);
        let ty = match answer {
            Answer::Offer => dhcp_msg_type::OFFER,
            Answer::Ack | Answer::InformAck => dhcp_msg_type::ACK,
            Answer::Nak => dhcp_msg_type::NAK,
        };
        put_option(&mut m, opt::MSG_TYPE, &[ty]);
        put_option(&mut m, opt::SERVER_ID, &s.gateway_ip.octets());
        if matches!(answer, Answer::Offer | Answer::Ack) {
            put_option(&mut m, opt::LEASE_TIME, &s.lease_secs.to_be_bytes());
        }
        if let Some(id) = req.client_id {
            put_option(&mut m, opt::CLIENT_ID, id);
        }
        if answer != Answer::Nak {
            m.extend_from_slice(&s.params);
        }
        m.push(opt::END);
        if m.len() < MIN_MESSAGE {
            m.resize(MIN_MESSAGE, opt::PAD);
        }
        Ok(m)
    }
}

impl HairpinAction for DhcpReply {
    fn gen_packet(&self, ctx: &MatchCtx<'_>) -> Result<MsgBlk, ActionError> {
        let s = &self.server;
        let payload = UdpPayload::of(ctx.hdrs, ctx.mblk)?.bytes()?;
        let req = Request::parse(&payload)?;
        let answer = self.answer(&req)?;
        let msg = self.message(&req, answer)?;

        let broadcast = (Ipv4Addr::BROADCAST, MacAddr::BROADCAST);
        let (dst_ip, dst_mac) = match answer {
            Answer::Nak => broadcast,
            _ if !req.ciaddr.is_unspecified() => (req.ciaddr, ctx.hdrs.eth.src),
            Answer::InformAck => broadcast,
            _ if req.flags & FLAG_BROADCAST != 0 => broadcast,
            _ => (s.client_ip, ctx.hdrs.eth.src),
        };
        let mut b = FrameBuilder::new(EtherHdr { dst: dst_mac, src: s.gateway_mac, ether_type: 0 });
        b.l3 = Some(L3::Ipv4(super::ipv4_hdr(s.gateway_ip, dst_ip)));
        b.l4 = Some(L4::Udp(UdpHdr {
            src_port: dhcp_port::SERVER,
            dst_port: dhcp_port::CLIENT,
            len: 0,
            csum: 0,
        }));
        super::reply(&b, &msg)
    }
}

//! The gateway's DHCPv6 server (RFC 8415): it hands the guest its private
//! IPv6 address in an IA_NA, and DNS servers (option 23, RFC 3646) and a
//! domain list (option 24: the domain name, then the search list).
//!
//! | request | answer |
//! | --- | --- |
//! | SOLICIT | ADVERTISE; REPLY (with Rapid Commit) when the SOLICIT carries Rapid Commit |
//! | REQUEST, RENEW, REBIND | REPLY with the address |
//! | CONFIRM | REPLY with status Success when every address is the guest's, else NotOnLink |
//! | RELEASE, DECLINE | REPLY with status Success (there is one address and it stays the guest's) |
//! | INFORMATION-REQUEST | REPLY with DNS servers and domains |
//! | anything else from port 546 to 547 | denied by a rule |
//!
//! The first IA_NA of a request gets the address, with T1 = 1/2 and T2 =
//! 4/5 of the lease (RFC 8415 21.4) and preferred and valid lifetimes of
//! the whole lease; any further IA_NA gets status NoAddrsAvail (there is
//! only one address). The server identifier is a DUID-LL (RFC 8415
//! 11.4) of the gateway MAC; the client identifier is echoed.
//!
//! Requests are checked as RFC 8415 16 asks: a client identifier where
//! one is required, a server identifier equal to ours where one is
//! required and none where none is allowed. A request that fails is a
//! counted action drop with no reply.
//!
//! Replies come from the gateway's link-local address (fe80::/64 from
//! the EUI-64 of its MAC) and MAC, UDP port 547 to 546, to the request's
//! source address and MAC.
//!
//! Options are walked with bounds: at most [`MAX_OPTIONS`] top-level
//! options and [`MAX_IA_OPTIONS`] inside each IA_NA, each fully inside
//! its enclosing area; one that is not makes the request malformed.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv6Addr;

use opte::ddi::MsgBlk;
use opte::engine::action::{Action, ActionError, HairpinAction};
use opte::engine::predicate::{MatchCtx, PortMatch, Predicate, dhcpv6_msg_type, dhcpv6_port};
use opte::engine::rule::RuleSpec;
use opte::packet::ip4::protocol;
use opte::packet::{EtherHdr, FrameBuilder, L3, L4, UdpHdr};
use opte_api::MacAddr;

use super::{PRIO_HAIRPIN, PRIO_REFUSE, REPLY_HOP_LIMIT, UdpPayload, dns_name, link_local};
use crate::api::{Ipv6Cfg, VpcCfg};

/// Most top-level options of a request that are walked.
pub const MAX_OPTIONS: usize = 32;
/// Most options inside one IA_NA that are walked.
pub const MAX_IA_OPTIONS: usize = 8;
/// Most IA_NAs of a request that are answered.
pub const MAX_IA_NA: usize = 4;
/// Longest client identifier echoed: a DUID is at most 128 bytes after
/// its 2-byte type (RFC 8415 11.1).
pub const MAX_CLIENT_ID: usize = 130;

/// The message header: type and transaction id.
const HDR_LEN: usize = 4;
/// An option's header: code and length.
const OPT_HDR_LEN: usize = 4;
/// The fixed part of an IA_NA: IAID, T1, T2.
const IA_NA_FIXED: usize = 12;
/// The fixed part of an IA Address option: address and two lifetimes.
const IAADDR_LEN: usize = 24;

/// DHCPv6 option codes used here (RFC 8415 21, RFC 3646).
pub mod opt {
    /// Client identifier (a DUID).
    pub const CLIENT_ID: u16 = 1;
    /// Server identifier (a DUID).
    pub const SERVER_ID: u16 = 2;
    /// Identity association for non-temporary addresses.
    pub const IA_NA: u16 = 3;
    /// Identity association for temporary addresses.
    pub const IA_TA: u16 = 4;
    /// An address inside an IA.
    pub const IAADDR: u16 = 5;
    /// Status code and message.
    pub const STATUS_CODE: u16 = 13;
    /// Two-message exchange (SOLICIT, REPLY).
    pub const RAPID_COMMIT: u16 = 14;
    /// DNS recursive name servers (RFC 3646).
    pub const DNS_SERVERS: u16 = 23;
    /// Domain search list (RFC 3646).
    pub const DOMAIN_LIST: u16 = 24;
    /// Identity association for prefix delegation.
    pub const IA_PD: u16 = 25;
}

/// DHCPv6 status codes (RFC 8415 21.13).
pub mod status {
    /// Success.
    pub const SUCCESS: u16 = 0;
    /// No addresses available for this IA.
    pub const NO_ADDRS_AVAIL: u16 = 2;
    /// The address does not suit the link.
    pub const NOT_ON_LINK: u16 = 4;
}

/// DUID type of a link-layer address (RFC 8415 11.4), and the hardware
/// type of Ethernet.
const DUID_LL: u16 = 3;
const HW_ETHERNET: u16 = 1;

/// The DHCPv6 rules: a hairpin per answered message type, and a deny for
/// every other client message.
pub(super) fn rules(cfg: &VpcCfg, v6: &Ipv6Cfg, guest: &Predicate) -> Vec<RuleSpec> {
    use dhcpv6_msg_type::*;
    let server = Arc::new(Dhcpv6Server::new(cfg, v6));
    let client_to_server = [
        Predicate::IpProto(protocol::UDP),
        Predicate::SrcPort(PortMatch::Exact(dhcpv6_port::CLIENT)),
        Predicate::DstPort(PortMatch::Exact(dhcpv6_port::SERVER)),
    ];
    let mut v = Vec::new();
    for ty in [SOLICIT, REQUEST, CONFIRM, RENEW, REBIND, RELEASE, DECLINE, INFORMATION_REQUEST] {
        let action = Dhcpv6Reply { request: ty, server: Arc::clone(&server) };
        let mut r = RuleSpec::new(PRIO_HAIRPIN, Action::Hairpin(Arc::new(action)))
            .with(guest.clone())
            .with(Predicate::Dhcpv6MsgType(ty));
        r.predicates.extend(client_to_server.iter().cloned());
        v.push(r);
    }
    let mut deny = RuleSpec::new(PRIO_REFUSE, Action::Deny);
    deny.predicates.extend(client_to_server);
    v.push(deny);
    v
}

/// What the server hands out, with what does not depend on the request
/// encoded once.
struct Dhcpv6Server {
    gateway_mac: MacAddr,
    link_local: Ipv6Addr,
    client_ip: Ipv6Addr,
    lease_secs: u32,
    /// The server identifier's body (a DUID-LL).
    duid: [u8; 10],
    /// Options 23 and 24, encoded.
    params: Vec<u8>,
}

impl Dhcpv6Server {
    fn new(cfg: &VpcCfg, v6: &Ipv6Cfg) -> Self {
        let mut duid = [0u8; 10];
        duid[..2].copy_from_slice(&DUID_LL.to_be_bytes());
        duid[2..4].copy_from_slice(&HW_ETHERNET.to_be_bytes());
        duid[4..].copy_from_slice(&cfg.gateway_mac.bytes());
        let d = &cfg.dhcp;
        let mut params = Vec::new();
        let dns: Vec<u8> = d.dns6.iter().flat_map(|a| a.octets()).collect();
        if !dns.is_empty() {
            put_option(&mut params, opt::DNS_SERVERS, &dns);
        }
        // The domain first, then the search list without repeating it.
        let domains = d.domain.iter().chain(
            d.search
                .iter()
                .filter(|s| d.domain.as_ref().is_none_or(|dom| !dom.eq_ignore_ascii_case(s))),
        );
        let list = dns_name::encode_list(domains.map(|s| s.as_str()));
        if !list.is_empty() {
            put_option(&mut params, opt::DOMAIN_LIST, &list);
        }
        Self {
            gateway_mac: cfg.gateway_mac,
            link_local: link_local(cfg.gateway_mac),
            client_ip: v6.private_ip,
            lease_secs: cfg.dhcp.lease(),
            duid,
            params,
        }
    }
}

/// Append option `code` with `data` (at most 65535 bytes; longer data is
/// cut, which the configuration limits never reach).
fn put_option(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    let data = data.get(..usize::from(u16::MAX)).unwrap_or(data);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&u16::try_from(data.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(data);
}

/// What a client's request said, as far as the reply needs it.
struct Request {
    xid: [u8; 3],
    client_id: Option<([u8; MAX_CLIENT_ID], usize)>,
    /// A server identifier was present; and whether it was ours.
    server_id: Option<bool>,
    rapid_commit: bool,
    /// IAIDs of the first [`MAX_IA_NA`] IA_NAs.
    ia_na: [[u8; 4]; MAX_IA_NA],
    ia_na_count: usize,
    /// Some IA (of any kind) was present.
    any_ia: bool,
    /// Addresses named in IA_NAs: how many, and whether one was not the
    /// guest's.
    addrs: usize,
    foreign_addr: bool,
}

impl Request {
    /// Read a request from the UDP payload.
    fn parse(p: &UdpPayload<'_>, server: &Dhcpv6Server) -> Result<Self, ActionError> {
        let malformed = ActionError::Reply("malformed DHCPv6 option");
        let [_ty, x0, x1, x2] = p.array::<HDR_LEN>(0)?;
        let mut req = Self {
            xid: [x0, x1, x2],
            client_id: None,
            server_id: None,
            rapid_commit: false,
            ia_na: [[0; 4]; MAX_IA_NA],
            ia_na_count: 0,
            any_ia: false,
            addrs: 0,
            foreign_addr: false,
        };
        let mut at = HDR_LEN;
        for _ in 0..MAX_OPTIONS {
            if at >= p.len() {
                return Ok(req);
            }
            let (code, body, len) = option_at(p, at, p.len())?;
            at = body.saturating_add(len);
            match code {
                opt::CLIENT_ID => {
                    if len == 0 || len > MAX_CLIENT_ID {
                        return Err(malformed);
                    }
                    let mut id = [0u8; MAX_CLIENT_ID];
                    p.read(body, id.get_mut(..len).ok_or(malformed.clone())?)?;
                    req.client_id = Some((id, len));
                }
                opt::SERVER_ID => {
                    let ours = len == server.duid.len() && p.array::<10>(body)? == server.duid;
                    req.server_id = Some(ours);
                }
                opt::RAPID_COMMIT => req.rapid_commit = true,
                opt::IA_NA => {
                    req.any_ia = true;
                    if len < IA_NA_FIXED {
                        return Err(malformed);
                    }
                    if let Some(slot) = req.ia_na.get_mut(req.ia_na_count) {
                        *slot = p.array::<4>(body)?;
                        req.ia_na_count += 1;
                    }
                    req.walk_ia(p, body.saturating_add(IA_NA_FIXED), at, server)?;
                }
                opt::IA_TA | opt::IA_PD => req.any_ia = true,
                _ => {}
            }
        }
        if at < p.len() {
            return Err(ActionError::Reply("too many DHCPv6 options"));
        }
        Ok(req)
    }

    /// Walk the options inside an IA_NA, in `[from, end)`, noting the
    /// addresses it names.
    fn walk_ia(
        &mut self,
        p: &UdpPayload<'_>,
        from: usize,
        end: usize,
        server: &Dhcpv6Server,
    ) -> Result<(), ActionError> {
        let mut at = from;
        for _ in 0..MAX_IA_OPTIONS {
            if at >= end {
                return Ok(());
            }
            let (code, body, len) = option_at(p, at, end)?;
            at = body.saturating_add(len);
            if code == opt::IAADDR {
                if len < IAADDR_LEN {
                    return Err(ActionError::Reply("malformed DHCPv6 IA address"));
                }
                let addr = Ipv6Addr::from(p.array::<16>(body)?);
                self.addrs = self.addrs.saturating_add(1);
                self.foreign_addr |= addr != server.client_ip;
            }
        }
        if at < end {
            return Err(ActionError::Reply("too many DHCPv6 options in an IA"));
        }
        Ok(())
    }
}

/// The option at `at`: its code, where its body starts and its length,
/// which must end by `end`.
fn option_at(
    p: &UdpPayload<'_>,
    at: usize,
    end: usize,
) -> Result<(u16, usize, usize), ActionError> {
    let malformed = ActionError::Reply("malformed DHCPv6 option");
    let [c0, c1, l0, l1] = p.array::<OPT_HDR_LEN>(at).map_err(|_| malformed.clone())?;
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let body = at.saturating_add(OPT_HDR_LEN);
    if body.saturating_add(len) > end {
        return Err(malformed);
    }
    Ok((u16::from_be_bytes([c0, c1]), body, len))
}

/// What the reply carries besides the identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The address in each IA_NA, and the parameters.
    Addresses,
    /// The parameters only (INFORMATION-REQUEST).
    Parameters,
    /// A top-level status code only.
    Status(u16),
}

/// Answer one DHCPv6 message type.
pub struct Dhcpv6Reply {
    /// The message type this rule answers.
    request: u8,
    server: Arc<Dhcpv6Server>,
}

impl fmt::Display for Dhcpv6Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = dhcpv6_msg_type::name(self.request).unwrap_or("?");
        write!(f, "dhcp6-reply({name}) {}", self.server.client_ip)
    }
}

impl Dhcpv6Reply {
    /// The reply's message type and content for `req`, after the checks
    /// of RFC 8415 16.
    fn answer(&self, req: &Request) -> Result<(u8, Answer), ActionError> {
        use dhcpv6_msg_type::*;
        let need_client = |r: &Request| {
            r.client_id
                .is_some()
                .then_some(())
                .ok_or(ActionError::NotApplicable("DHCPv6 request without a client identifier"))
        };
        let need_ours = |r: &Request| {
            (r.server_id == Some(true))
                .then_some(())
                .ok_or(ActionError::NotApplicable("DHCPv6 request for another server"))
        };
        let need_none = |r: &Request| {
            r.server_id
                .is_none()
                .then_some(())
                .ok_or(ActionError::NotApplicable("DHCPv6 request names a server"))
        };
        match self.request {
            SOLICIT => {
                need_client(req)?;
                need_none(req)?;
                Ok((if req.rapid_commit { REPLY } else { ADVERTISE }, Answer::Addresses))
            }
            REQUEST | RENEW => {
                need_client(req)?;
                need_ours(req)?;
                Ok((REPLY, Answer::Addresses))
            }
            REBIND => {
                need_client(req)?;
                need_none(req)?;
                Ok((REPLY, Answer::Addresses))
            }
            CONFIRM => {
                need_client(req)?;
                need_none(req)?;
                if req.addrs == 0 {
                    return Err(ActionError::NotApplicable("DHCPv6 CONFIRM without addresses"));
                }
                let code = if req.foreign_addr { status::NOT_ON_LINK } else { status::SUCCESS };
                Ok((REPLY, Answer::Status(code)))
            }
            RELEASE | DECLINE => {
                need_client(req)?;
                need_ours(req)?;
                Ok((REPLY, Answer::Status(status::SUCCESS)))
            }
            INFORMATION_REQUEST => {
                if req.server_id == Some(false) {
                    return Err(ActionError::NotApplicable("DHCPv6 request for another server"));
                }
                if req.any_ia {
                    return Err(ActionError::NotApplicable(
                        "DHCPv6 INFORMATION-REQUEST with an IA",
                    ));
                }
                Ok((REPLY, Answer::Parameters))
            }
            _ => Err(ActionError::NotApplicable("DHCPv6 message type not answered")),
        }
    }

    /// The reply's DHCPv6 message (the UDP payload).
    fn message(&self, req: &Request, ty: u8, answer: Answer) -> Result<Vec<u8>, ActionError> {
        let s = &self.server;
        let ia_len = OPT_HDR_LEN + IA_NA_FIXED + OPT_HDR_LEN + IAADDR_LEN;
        let cap = HDR_LEN
            + OPT_HDR_LEN * 4
            + MAX_CLIENT_ID
            + s.duid.len()
            + ia_len * MAX_IA_NA
            + s.params.len()
            + 2;
        let mut m = Vec::new();
        m.try_reserve_exact(cap).map_err(|_| ActionError::Reply("no memory for the reply"))?;
        m.push(ty);
        m.extend_from_slice(&req.xid);
        if let Some((id, len)) = &req.client_id {
            put_option(&mut m, opt::CLIENT_ID, id.get(..*len).unwrap_or(&[]));
        }
        put_option(&mut m, opt::SERVER_ID, &s.duid);
        match answer {
            Answer::Addresses => {
                let ias = req.ia_na.get(..req.ia_na_count).unwrap_or(&[]);
                if ias.is_empty() {
                    put_option(&mut m, opt::STATUS_CODE, &status::NO_ADDRS_AVAIL.to_be_bytes());
                }
                for (i, iaid) in ias.iter().enumerate() {
                    let mut ia = [0u8; IA_NA_FIXED + OPT_HDR_LEN + IAADDR_LEN];
                    let n = if i == 0 {
                        self.ia_with_address(iaid, &mut ia)
                    } else {
                        ia_without_address(iaid, &mut ia)
                    };
                    put_option(&mut m, opt::IA_NA, ia.get(..n).unwrap_or(&[]));
                }
                if ty == dhcpv6_msg_type::REPLY && self.request == dhcpv6_msg_type::SOLICIT {
                    put_option(&mut m, opt::RAPID_COMMIT, &[]);
                }
                m.extend_from_slice(&s.params);
            }
            Answer::Parameters => m.extend_from_slice(&s.params),
            Answer::Status(code) => put_option(&mut m, opt::STATUS_CODE, &code.to_be_bytes()),
        }
        Ok(m)
    }

    /// An IA_NA body holding the guest's address; returns its length.
    fn ia_with_address(&self, iaid: &[u8; 4], out: &mut [u8]) -> usize {
        let lease = self.server.lease_secs;
        let t1 = lease / 2;
        let t2 = lease / 5 * 4;
        let mut w = Writer { buf: out, at: 0 };
        w.put(iaid);
        w.put(&t1.to_be_bytes());
        w.put(&t2.to_be_bytes());
        w.put(&opt::IAADDR.to_be_bytes());
        w.put(&u16::try_from(IAADDR_LEN).unwrap_or(0).to_be_bytes());
        w.put(&self.server.client_ip.octets());
        w.put(&lease.to_be_bytes());
        w.put(&lease.to_be_bytes());
        w.at
    }
}

/// An IA_NA body with status NoAddrsAvail; returns its length.
fn ia_without_address(iaid: &[u8; 4], out: &mut [u8]) -> usize {
    let mut w = Writer { buf: out, at: 0 };
    w.put(iaid);
    w.put(&[0; 8]); // T1, T2
    w.put(&opt::STATUS_CODE.to_be_bytes());
    w.put(&2u16.to_be_bytes());
    w.put(&status::NO_ADDRS_AVAIL.to_be_bytes());
    w.at
}

/// Writes bytes one after the other into a fixed buffer; what does not
/// fit is left out (the callers size the buffer for everything).
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        let end = self.at.saturating_add(b.len());
        if let Some(dst) = self.buf.get_mut(self.at..end) {
            dst.copy_from_slice(b);
            self.at = end;
        }
    }
}

impl HairpinAction for Dhcpv6Reply {
    fn gen_packet(&self, ctx: &MatchCtx<'_>) -> Result<MsgBlk, ActionError> {
        let s = &self.server;
        let Some(L3::Ipv6(ip)) = &ctx.hdrs.l3 else {
            return Err(ActionError::NotApplicable("not IPv6"));
        };
        let payload = UdpPayload::of(ctx.hdrs, ctx.mblk)?;
        let req = Request::parse(&payload, s)?;
        let (ty, answer) = self.answer(&req)?;
        let msg = self.message(&req, ty, answer)?;
        let mut b = FrameBuilder::new(EtherHdr {
            dst: ctx.hdrs.eth.src,
            src: s.gateway_mac,
            ether_type: 0,
        });
        b.l3 = Some(L3::Ipv6(super::ipv6_hdr(s.link_local, ip.src, REPLY_HOP_LIMIT)));
        b.l4 = Some(L4::Udp(UdpHdr {
            src_port: dhcpv6_port::SERVER,
            dst_port: dhcpv6_port::CLIENT,
            len: 0,
            csum: 0,
        }));
        super::reply(&b, &msg)
    }
}

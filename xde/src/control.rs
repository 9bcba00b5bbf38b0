//! The driver's command handler: the one place a command's bytes become
//! a change to the port registry, the underlay setting or the host-wide
//! address mappings, and the state a reply is built from.
//!
//! # Theory
//!
//! A command arrives as an [`OpteCmdIoctl`] header and the request bytes
//! (copied in by the illumos ioctl entry point, or read from the Linux
//! host's socket). [`XdeCtl::handle`] runs the checks of the contract in
//! order (see `opte_api::cmd`): the version (a mismatch names both), the
//! request size against [`MAX_REQ_LEN`] and against the header, the
//! command code, the flags, a state-changing command's reply room; then
//! decodes the body (postcard, every byte used, lists bounded while
//! decoding), validates it, applies it, and encodes the reply. It calls
//! no DDI function, so both kernels run exactly this code on exactly
//! these bytes. Nothing in it panics on request data: no `unwrap`, no
//! indexing; every failure is an [`OpteError`] and leaves everything as
//! it was.
//!
//! [`XdeCtl::execute`] wraps `handle` with the reply protocol: it sets
//! `resp_len_needed` and produces the errno and the bytes to copy out.
//!
//! # Limits
//!
//! At most [`MAX_PORTS`] ports; request bodies at most [`MAX_REQ_LEN`]
//! bytes; replies at most [`MAX_RESP_LEN`] bytes; every list in a
//! request bounded by the VPC limits (`oxide_vpc::api::limits`).
//!
//! # Locking
//!
//! - `registry` (mutex): the ports by name and the underlay. Held for the
//!   whole of `create-xde`, `delete-xde` and the underlay commands (so a
//!   port is never created against an underlay being cleared); other
//!   commands hold it only to look a port up, then work on the port
//!   (whose own `ctl` mutex serializes commands on it).
//! - Lock order: `registry`, then a port's locks, then the network's
//!   (`VpcPort::new` registers the port with the network while
//!   `registry` is held).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use opte::ddi::sync::KMutex;
use opte::engine::port::PortError;
use opte::engine::rule::{RuleError, RuleId};
use opte_api::cmd::{decode, encode, error_text};
use opte_api::{
    API_VERSION, MAX_REQ_LEN, MAX_RESP_LEN, MIN_RESP_LEN, OpteCmd, OpteCmdIoctl, OpteError,
};
use oxide_vpc::cmd::*;
use oxide_vpc::engine::{NetworkError, PortLimits, VpcError, VpcNetwork, VpcPort};

/// Most ports one driver holds.
pub const MAX_PORTS: usize = 1024;

/// What the driver answers a command: the errno (0 for success) and the
/// bytes to copy to the caller's reply buffer (see `opte_api::cmd`'s
/// reply protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// 0 on success, else the error's errno.
    pub errno: i32,
    /// The reply, the encoded error, or nothing.
    pub body: Vec<u8>,
}

/// The ports by name and the underlay links.
struct Registry {
    ports: BTreeMap<String, Arc<VpcPort>>,
    underlay: Option<Underlay>,
}

/// The driver's control state: the port registry, the underlay setting
/// and the host-wide mappings every port shares.
pub struct XdeCtl {
    registry: KMutex<Registry>,
    net: Arc<VpcNetwork>,
    limits: PortLimits,
}

impl XdeCtl {
    /// No ports, no underlay, empty mappings; ports get flow tables of
    /// `limits`.
    pub fn new(limits: PortLimits) -> Self {
        Self {
            registry: KMutex::new(Registry { ports: BTreeMap::new(), underlay: None }),
            net: Arc::new(VpcNetwork::new()),
            limits,
        }
    }

    /// The host-wide mappings (for the packet path).
    pub fn network(&self) -> &Arc<VpcNetwork> {
        &self.net
    }

    /// The port named `name` (for the packet path).
    pub fn port(&self, name: &str) -> Option<Arc<VpcPort>> {
        self.registry.lock().ports.get(name).cloned()
    }

    /// The ports, ordered by name.
    pub fn ports(&self) -> Vec<Arc<VpcPort>> {
        self.registry.lock().ports.values().cloned().collect()
    }

    /// Run one command and apply the reply protocol: set
    /// `hdr.resp_len_needed` and say what to copy out with which errno.
    pub fn execute(&self, hdr: &mut OpteCmdIoctl, req: &[u8]) -> Outcome {
        match self.handle(hdr, req) {
            Ok(body) => {
                hdr.resp_len_needed = body.len() as u64;
                Outcome { errno: 0, body }
            }
            Err(e) => refuse(hdr, &e),
        }
    }

    /// Run one command: check the header against the request bytes,
    /// decode, validate, apply, and encode the reply (which fits in
    /// `hdr.resp_len` bytes, or the error says how many it needs).
    pub fn handle(&self, hdr: &OpteCmdIoctl, req: &[u8]) -> Result<Vec<u8>, OpteError> {
        let is_version = hdr.cmd == OpteCmd::ApiVersion as u32;
        if !is_version && hdr.api_version != API_VERSION {
            return Err(OpteError::VersionMismatch {
                client: hdr.api_version,
                driver: API_VERSION,
            });
        }
        if hdr.req_len > MAX_REQ_LEN {
            return Err(OpteError::RequestTooLarge { len: hdr.req_len, max: MAX_REQ_LEN });
        }
        let cmd = OpteCmd::try_from(hdr.cmd)?;
        if hdr.req_len != req.len() as u64 {
            return Err(OpteError::malformed(
                cmd,
                format_args!(
                    "the header names {} request bytes but {} arrived",
                    hdr.req_len,
                    req.len()
                ),
            ));
        }
        if hdr.flags != 0 {
            return Err(OpteError::BadFlags(hdr.flags));
        }
        if cmd.changes_state() && hdr.resp_len < MIN_RESP_LEN {
            // Refused before anything changes, so the retry the client
            // makes cannot apply the change twice.
            return Err(OpteError::ReplyTooLarge { needed: MIN_RESP_LEN });
        }
        let reply = self.dispatch(cmd, req)?;
        let len = reply.len() as u64;
        if len > hdr.resp_len || len > MAX_RESP_LEN {
            return Err(OpteError::ReplyTooLarge { needed: len });
        }
        Ok(reply)
    }

    /// Decode `cmd`'s request, apply it, encode the reply.
    fn dispatch(&self, cmd: OpteCmd, req: &[u8]) -> Result<Vec<u8>, OpteError> {
        match cmd {
            OpteCmd::ApiVersion => encode(&API_VERSION),
            OpteCmd::ListPorts => {
                let () = decode(cmd, req)?;
                encode(&self.list_ports())
            }
            OpteCmd::CreateXde => {
                let r: CreateXdeReq = decode(cmd, req)?;
                self.create_xde(r)?;
                encode(&())
            }
            OpteCmd::DeleteXde => {
                let r: DeleteXdeReq = decode(cmd, req)?;
                self.delete_xde(&r.name)?;
                encode(&())
            }
            OpteCmd::SetXdeUnderlay => {
                let r: SetXdeUnderlayReq = decode(cmd, req)?;
                self.set_underlay(r)?;
                encode(&())
            }
            OpteCmd::ClearXdeUnderlay => {
                let () = decode(cmd, req)?;
                self.clear_underlay()?;
                encode(&())
            }
            OpteCmd::AddFwRule => {
                let r: AddFwRuleReq = decode(cmd, req)?;
                let id = self.find(&r.port)?.add_fw_rule(r.rule).map_err(vpc_error)?;
                encode(&AddFwRuleResp { id: id.0 })
            }
            OpteCmd::RmFwRule => {
                let r: RmFwRuleReq = decode(cmd, req)?;
                let rule =
                    self.find(&r.port)?.rm_fw_rule(r.dir, RuleId(r.id)).map_err(vpc_error)?;
                encode(&RmFwRuleResp { rule })
            }
            OpteCmd::SetFwRules => {
                let r: SetFwRulesReq = decode(cmd, req)?;
                self.find(&r.port)?.set_fw_rules(r.rules).map_err(vpc_error)?;
                encode(&())
            }
            OpteCmd::AddRouterEntry => {
                let r: RouterEntryReq = decode(cmd, req)?;
                self.find(&r.port)?.add_route(r.entry).map_err(vpc_error)?;
                encode(&())
            }
            OpteCmd::DelRouterEntry => {
                let r: RouterEntryReq = decode(cmd, req)?;
                self.find(&r.port)?.del_route(r.entry).map_err(vpc_error)?;
                encode(&())
            }
            OpteCmd::SetV2p => {
                let r: SetV2pReq = decode(cmd, req)?;
                self.net.set_v2p(r.mapping).map_err(|e| net_error(e, "V2P mapping"))?;
                encode(&())
            }
            OpteCmd::ClearV2p => {
                let r: ClearV2pReq = decode(cmd, req)?;
                let what = format!("V2P mapping for {} on VNI {}", r.ip, r.vni);
                self.net.clear_v2p(r.vni, r.ip).map_err(|e| net_error(e, &what))?;
                encode(&())
            }
            OpteCmd::DumpV2p => {
                let () = decode(cmd, req)?;
                encode(&DumpV2pResp { mappings: self.net.dump_v2p() })
            }
            OpteCmd::SetV2b => {
                let r: SetV2bReq = decode(cmd, req)?;
                self.net.set_v2b(r.mapping).map_err(|e| net_error(e, "V2B mapping"))?;
                encode(&())
            }
            OpteCmd::ClearV2b => {
                let r: ClearV2bReq = decode(cmd, req)?;
                let what = format!("V2B mapping for {}", r.prefix);
                self.net.clear_v2b(r.prefix).map_err(|e| net_error(e, &what))?;
                encode(&())
            }
            OpteCmd::DumpV2b => {
                let () = decode(cmd, req)?;
                encode(&DumpV2bResp { mappings: self.net.dump_v2b() })
            }
            OpteCmd::SetExternalIps => {
                let r: SetExternalIpsReq = decode(cmd, req)?;
                self.find(&r.port)?.set_external_ips(r.v4, r.v6).map_err(vpc_error)?;
                encode(&())
            }
            OpteCmd::AllowCidr => {
                let r: CidrReq = decode(cmd, req)?;
                self.find(&r.port)?.allow_cidr(r.transit).map_err(vpc_error)?;
                encode(&())
            }
            OpteCmd::RemoveCidr => {
                let r: CidrReq = decode(cmd, req)?;
                self.find(&r.port)?
                    .remove_cidr(r.transit.cidr, r.transit.dir)
                    .map_err(vpc_error)?;
                encode(&())
            }
            OpteCmd::AttachSubnet => {
                let r: AttachSubnetReq = decode(cmd, req)?;
                self.find(&r.port)?.attach_subnet(r.subnet).map_err(vpc_error)?;
                encode(&())
            }
            OpteCmd::DetachSubnet => {
                let r: DetachSubnetReq = decode(cmd, req)?;
                self.find(&r.port)?.detach_subnet(r.cidr).map_err(vpc_error)?;
                encode(&())
            }
            OpteCmd::AddPeering => {
                let r: AddPeeringReq = decode(cmd, req)?;
                self.find(&r.port)?.add_peering(r.peering).map_err(vpc_error)?;
                encode(&())
            }
            OpteCmd::RemovePeering => {
                let r: RemovePeeringReq = decode(cmd, req)?;
                self.find(&r.port)?.remove_peering(r.vni).map_err(vpc_error)?;
                encode(&())
            }
            OpteCmd::ListLayers => {
                let r: PortReq = decode(cmd, req)?;
                encode(&ListLayersResp::of(&*self.find(&r.port)?))
            }
            OpteCmd::DumpLayer => {
                let r: DumpLayerReq = decode(cmd, req)?;
                let d = DumpLayerResp::of(&*self.find(&r.port)?, &r.layer).map_err(port_error)?;
                encode(&d)
            }
            OpteCmd::DumpUft => {
                let r: PortReq = decode(cmd, req)?;
                encode(&DumpUftResp::of(&*self.find(&r.port)?))
            }
            OpteCmd::DumpTcpFlows => {
                let r: PortReq = decode(cmd, req)?;
                encode(&DumpTcpFlowsResp::of(&*self.find(&r.port)?))
            }
            OpteCmd::ClearUft => {
                let r: PortReq = decode(cmd, req)?;
                self.find(&r.port)?.port().clear_uft();
                encode(&())
            }
            OpteCmd::ClearLft => {
                let r: ClearLftReq = decode(cmd, req)?;
                self.find(&r.port)?.port().clear_lft(r.layer.as_deref()).map_err(port_error)?;
                encode(&())
            }
            OpteCmd::Stats => {
                let r: PortReq = decode(cmd, req)?;
                encode(&StatsResp::of(&*self.find(&r.port)?))
            }
            OpteCmd::DumpPort => {
                let r: PortReq = decode(cmd, req)?;
                encode(&DumpPortResp(self.find(&r.port)?.spec()))
            }
            OpteCmd::Trace => {
                let r: TraceReq = decode(cmd, req)?;
                let (ex, _) = self.find(&r.port)?.explain(r.dir, &r.frame);
                encode(&TraceResp::from(&ex))
            }
        }
    }

    /// The port named `name`.
    fn find(&self, name: &str) -> Result<Arc<VpcPort>, OpteError> {
        self.port(name).ok_or_else(|| OpteError::NoSuchPort(error_text(name)))
    }

    fn list_ports(&self) -> ListPortsResp {
        let reg = self.registry.lock();
        ListPortsResp {
            underlay: reg.underlay.clone(),
            ports: reg.ports.values().map(|p| PortInfo::of(p)).collect(),
        }
    }

    fn create_xde(&self, r: CreateXdeReq) -> Result<(), OpteError> {
        check_link_name(&r.name).map_err(|why| OpteError::BadName {
            name: error_text(&r.name),
            why: why.to_string(),
        })?;
        let mut reg = self.registry.lock();
        if reg.underlay.is_none() {
            return Err(OpteError::NoUnderlay);
        }
        if reg.ports.contains_key(&r.name) {
            return Err(OpteError::PortExists(r.name));
        }
        if reg.underlay.as_ref().is_some_and(|u| u.u1 == r.name || u.u2 == r.name) {
            return Err(OpteError::Exists(format!("{} is an underlay link", r.name)));
        }
        if reg.ports.len() >= MAX_PORTS {
            return Err(OpteError::TooManyPorts { max: MAX_PORTS as u32 });
        }
        let port = VpcPort::new(&r.name, r.cfg, Arc::clone(&self.net), self.limits, None)
            .map_err(vpc_error)?;
        reg.ports.insert(r.name, port);
        Ok(())
    }

    fn delete_xde(&self, name: &str) -> Result<(), OpteError> {
        let removed = self.registry.lock().ports.remove(name);
        // The port is dropped here, outside the registry lock.
        removed.map(drop).ok_or_else(|| OpteError::NoSuchPort(error_text(name)))
    }

    fn set_underlay(&self, r: SetXdeUnderlayReq) -> Result<(), OpteError> {
        for n in [&r.u1, &r.u2] {
            check_link_name(n)
                .map_err(|why| OpteError::BadName { name: error_text(n), why: why.to_string() })?;
        }
        if r.u1 == r.u2 {
            return Err(OpteError::Invalid(format!(
                "the two underlay links must differ (both are {})",
                r.u1
            )));
        }
        let mut reg = self.registry.lock();
        let want = Underlay { u1: r.u1, u2: r.u2 };
        if reg.underlay.as_ref() == Some(&want) {
            return Ok(());
        }
        if !reg.ports.is_empty() {
            return Err(OpteError::UnderlayInUse { ports: reg.ports.len() as u32 });
        }
        reg.underlay = Some(want);
        Ok(())
    }

    fn clear_underlay(&self) -> Result<(), OpteError> {
        let mut reg = self.registry.lock();
        if !reg.ports.is_empty() {
            return Err(OpteError::UnderlayInUse { ports: reg.ports.len() as u32 });
        }
        if reg.underlay.take().is_none() {
            return Err(OpteError::NoUnderlay);
        }
        Ok(())
    }
}

/// The outcome of a refused command under the reply protocol (also for
/// transports that refuse a command before the handler sees it, such as
/// a caller without permission): `ENOBUFS` carries the needed size in
/// `resp_len_needed` and no body; any other error is encoded as the body
/// when it fits the caller's buffer.
pub fn refuse(hdr: &mut OpteCmdIoctl, e: &OpteError) -> Outcome {
    if let OpteError::ReplyTooLarge { needed } = e {
        hdr.resp_len_needed = *needed;
        return Outcome { errno: e.errno(), body: Vec::new() };
    }
    let body = encode(e).unwrap_or_default();
    let body = if body.len() as u64 <= hdr.resp_len { body } else { Vec::new() };
    hdr.resp_len_needed = body.len() as u64;
    Outcome { errno: e.errno(), body }
}

/// The contract's error for a port command the VPC refused.
fn vpc_error(e: VpcError) -> OpteError {
    let text = error_text(&e.to_string());
    match e {
        VpcError::Cfg(_) => OpteError::Invalid(text),
        VpcError::Port(p) => port_error(p),
        VpcError::NoSuchFwRule { .. }
        | VpcError::NoSuchRoute(_)
        | VpcError::NoSuchCidr(_)
        | VpcError::NoSuchPeering(_) => OpteError::NotFound(text),
        VpcError::DuplicateCidr(_) => OpteError::Exists(text),
    }
}

/// The contract's error for an engine refusal.
fn port_error(e: PortError) -> OpteError {
    let text = error_text(&e.to_string());
    match e {
        PortError::BadState { .. } => OpteError::Busy(text),
        PortError::NoSuchLayer(_) | PortError::Rule(RuleError::NoSuchRule(_)) => {
            OpteError::NotFound(text)
        }
        PortError::Rule(RuleError::TooManyRules) => OpteError::TableFull(text),
        PortError::Rule(RuleError::Predicate(_)) => OpteError::Invalid(text),
    }
}

/// The contract's error for a mapping command the network refused.
fn net_error(e: NetworkError, what: &str) -> OpteError {
    match e {
        NetworkError::TableFull { .. } | NetworkError::NoMemory { .. } => {
            OpteError::TableFull(error_text(&e.to_string()))
        }
        NetworkError::NoSuchMapping => OpteError::NotFound(error_text(&format!("no {what}"))),
        NetworkError::Cfg(c) => OpteError::Invalid(error_text(&format!("{what}: {c}"))),
    }
}

//! Rules and the ordered rule table of one layer direction.
//!
//! A rule is a priority, a list of predicates (all must match) and an
//! action. The table keeps rules in evaluation order: lower priority
//! first; at equal priority, deny rules before the others; then the order
//! they were added in (their [`RuleId`], which never repeats), so the
//! outcome never depends on anything but the configuration. A table holds
//! at most [`MAX_RULES`] rules; adding one more is refused.
//!
//! # The index
//!
//! Finding the first match must not cost a scan of thousands of rules on
//! every new flow. Each table keeps an index, rebuilt on every change
//! (the control path), of which rules *can* match a packet, from the
//! predicates every rule states at its top level (ANDed):
//!
//! - a rule naming an IP protocol can match only that protocol, whether
//!   it names it outright or through a field only that protocol has (an
//!   ICMPv6 type, a DHCP message type: [`Predicate::implied_proto`]);
//! - a TCP or UDP rule naming exact destination ports (one, or an `Any`
//!   of them) can match only those ports.
//!
//! - a rule naming a destination block (an address or a prefix: a
//!   route, a rule about one host) and no exact ports can match only
//!   destinations inside it. A table with at least
//!   [`DST_INDEX_MIN_RULES`] such rules files them by block (below that,
//!   by protocol as above): a lookup probes one block per prefix length
//!   the table uses (at most [`MAX_DST_LENS`] per family; rules of other
//!   lengths are filed by protocol), so a router of thousands of routes
//!   evaluates only the few that hold the destination.
//!
//! A lookup walks, in evaluation order, only the rules filed under the
//! packet's (protocol, destination port), under its protocol alone,
//! under the blocks holding its destination, and the rules that name
//! none of these; of those it evaluates only the rules
//! whose predicates can match the packet's kind of frame (an IPv6 address
//! rule never an IPv4 packet: [`Predicate::frame_kinds`]). The index only
//! ever skips rules that cannot match, so the result is the rule a full
//! scan would find.

use alloc::vec::Vec;
use arrayvec::ArrayVec;
use core::fmt;
use core::net::IpAddr;
use core::sync::atomic::{AtomicU64, Ordering};
use hashbrown::HashMap;
use opte_api::IpCidr;

use super::action::Action;
use super::predicate::{
    Ipv4Match, Ipv6Match, MatchCtx, PortMatch, Predicate, PredicateError, frame_kind,
};
use crate::packet::ip4::protocol;
use crate::packet::{Headers, L3, L4};

/// Most rules one layer direction holds.
pub const MAX_RULES: usize = 8192;

/// A rule's identity, unique within its port for the port's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub u64);

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A rule as configured: priority, predicates, action.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub priority: u16,
    pub predicates: Vec<Predicate>,
    pub action: Action,
}

impl RuleSpec {
    /// A rule with no predicates (matching everything).
    pub fn new(priority: u16, action: Action) -> Self {
        Self { priority, predicates: Vec::new(), action }
    }

    /// The same rule: equal priority and predicates, and the same action
    /// (the same object for trait actions).
    pub fn same_as(&self, other: &RuleSpec) -> bool {
        self.priority == other.priority
            && self.predicates == other.predicates
            && self.action.same_as(&other.action)
    }

    /// Add a predicate (builder style).
    pub fn with(mut self, p: Predicate) -> Self {
        self.predicates.push(p);
        self
    }
}

/// A rule in a table.
#[derive(Debug)]
pub struct Rule {
    pub id: RuleId,
    pub spec: RuleSpec,
    hits: AtomicU64,
}

impl Rule {
    /// Packets this rule has matched.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// True when every predicate matches.
    pub fn matches(&self, ctx: &MatchCtx<'_>) -> bool {
        self.spec.predicates.iter().all(|p| p.matches(ctx))
    }

    fn sort_key(&self) -> (u16, bool, RuleId) {
        (self.spec.priority, !self.spec.action.is_deny(), self.id)
    }
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// The table already holds [`MAX_RULES`] rules.
    TooManyRules,
    /// A predicate is malformed.
    Predicate(PredicateError),
    /// No rule has this id.
    NoSuchRule(RuleId),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyRules => write!(f, "rule table full ({MAX_RULES} rules)"),
            Self::Predicate(e) => write!(f, "bad predicate: {e}"),
            Self::NoSuchRule(id) => write!(f, "no rule {id}"),
        }
    }
}

/// The rules of one layer direction, in evaluation order.
#[derive(Debug, Default)]
pub struct RuleTable {
    rules: Vec<Rule>,
    index: RuleIndex,
}

/// Most exact ports one rule is filed under; a rule listing more is
/// filed under its protocol alone.
const MAX_INDEXED_PORTS: usize = 64;

/// A rule as the index files it: its position in evaluation order and
/// the kinds of frame it can match ([`frame_kind`] bits).
#[derive(Debug, Clone, Copy)]
struct Cand {
    pos: u32,
    kinds: u8,
}

/// Rules a table files by destination block once it holds at least this
/// many such rules: below it, evaluating them costs less than probing a
/// block per prefix length.
pub const DST_INDEX_MIN_RULES: usize = 32;

/// Most prefix lengths per family a table files rules under; a rule of
/// another length is filed by protocol instead. It bounds the probes,
/// and the lists, of one lookup.
pub const MAX_DST_LENS: usize = 16;

/// Candidate lists one lookup merges, on the stack: the three of the
/// protocol index and a destination block per prefix length at most.
type Lists<'a> = ArrayVec<&'a [Cand], { 3 + MAX_DST_LENS }>;

/// The rules that can match packets of a protocol and destination port
/// (see the module documentation), each list in evaluation order.
#[derive(Debug, Default)]
struct RuleIndex {
    /// Rules naming no protocol (nor, when `dst` is in use, a
    /// destination block).
    any: Vec<Cand>,
    /// Rules naming a protocol but no exact ports, by protocol (a short
    /// list: a table names few protocols, so a scan is the fastest
    /// search).
    by_proto: Vec<(u8, Vec<Cand>)>,
    /// Rules naming TCP or UDP and exact destination ports (a firewall
    /// may name thousands).
    by_port: HashMap<(u8, u16), Vec<Cand>>,
    /// Rules naming a destination block and no exact ports, by block;
    /// empty unless the table has [`DST_INDEX_MIN_RULES`] of them.
    dst: DstIndex,
}

/// Rules by the destination block a top-level predicate names (a route,
/// a rule about one host): a packet's candidates are the rules of the
/// blocks that hold its destination, one probe per prefix length the
/// table uses.
#[derive(Debug, Default)]
struct DstIndex {
    /// The prefix lengths in use, each once.
    lens_v4: Vec<u8>,
    lens_v6: Vec<u8>,
    blocks: HashMap<IpCidr, Vec<Cand>>,
}

impl DstIndex {
    fn lens(&self, v6: bool) -> &[u8] {
        if v6 { &self.lens_v6 } else { &self.lens_v4 }
    }

    /// File `cand` under `block`; false (nothing filed) if that would
    /// take a prefix length past [`MAX_DST_LENS`] of its family.
    fn file(&mut self, block: IpCidr, cand: Cand) -> bool {
        let len = block.prefix_len();
        let lens = match block {
            IpCidr::V4(_) => &mut self.lens_v4,
            IpCidr::V6(_) => &mut self.lens_v6,
        };
        if !lens.contains(&len) {
            if lens.len() >= MAX_DST_LENS {
                return false;
            }
            lens.push(len);
        }
        self.blocks.entry(block).or_default().push(cand);
        true
    }

    /// The lists of the blocks holding `dst`.
    fn lists<'a>(&'a self, dst: IpAddr, into: &mut Lists<'a>) {
        for &len in self.lens(dst.is_ipv6()) {
            // A block's address has no bits past its prefix (as
            // `containing` makes them), or no packet is inside it.
            let Ok(block) = IpCidr::containing(dst, len) else { continue };
            if let Some(list) = self.blocks.get(&block) {
                // Room for one list per length (`file` bounds them).
                let _ = into.try_push(list);
            }
        }
    }
}

/// The destination block a rule's top-level predicates restrict it to.
fn dst_block(spec: &RuleSpec) -> Option<IpCidr> {
    spec.predicates.iter().find_map(|p| match p {
        Predicate::Ipv4Dst(Ipv4Match::Exact(a)) => Some(IpCidr::from_host(IpAddr::V4(*a))),
        Predicate::Ipv4Dst(Ipv4Match::Prefix(c)) => Some(IpCidr::V4(*c)),
        Predicate::Ipv6Dst(Ipv6Match::Exact(a)) => Some(IpCidr::from_host(IpAddr::V6(*a))),
        Predicate::Ipv6Dst(Ipv6Match::Prefix(c)) => Some(IpCidr::V6(*c)),
        _ => None,
    })
}

/// The protocol and exact destination ports a rule's top-level
/// predicates restrict it to.
fn index_keys(spec: &RuleSpec) -> (Option<u8>, Vec<u16>) {
    let proto = spec.predicates.iter().find_map(Predicate::implied_proto);
    let exact = |p: &Predicate| match p {
        Predicate::DstPort(PortMatch::Exact(n)) => Some(*n),
        _ => None,
    };
    let ports = spec
        .predicates
        .iter()
        .find_map(|p| match p {
            Predicate::DstPort(PortMatch::Exact(n)) => Some(alloc::vec![*n]),
            Predicate::Any(alts) if alts.len() <= MAX_INDEXED_PORTS => {
                alts.iter().map(exact).collect::<Option<Vec<u16>>>()
            }
            _ => None,
        })
        .unwrap_or_default();
    (proto, ports)
}

impl RuleIndex {
    fn build(rules: &[Rule]) -> Self {
        let mut ix = Self::default();
        let keys: Vec<_> =
            rules.iter().map(|r| (index_keys(&r.spec), dst_block(&r.spec))).collect();
        let by_port = |proto: Option<u8>, ports: &[u16]| {
            !ports.is_empty() && matches!(proto, Some(protocol::TCP | protocol::UDP))
        };
        let dst_rules =
            keys.iter().filter(|((p, ports), b)| b.is_some() && !by_port(*p, ports)).count();
        let use_dst = dst_rules >= DST_INDEX_MIN_RULES;
        for (pos, (r, ((proto, ports), block))) in rules.iter().zip(keys).enumerate() {
            let pos = u32::try_from(pos).unwrap_or(u32::MAX);
            let kinds = r.spec.predicates.iter().fold(frame_kind::ALL, |k, p| k & p.frame_kinds());
            let cand = Cand { pos, kinds };
            match (proto, block) {
                (Some(p), _) if by_port(proto, &ports) => {
                    for port in ports {
                        ix.by_port.entry((p, port)).or_default().push(cand);
                    }
                }
                (_, Some(b)) if use_dst && ix.dst.file(b, cand) => {}
                (None, _) => ix.any.push(cand),
                (Some(p), _) => match ix.by_proto.iter_mut().find(|(q, _)| *q == p) {
                    Some((_, list)) => list.push(cand),
                    None => ix.by_proto.push((p, alloc::vec![cand])),
                },
            }
        }
        ix
    }

    /// The protocol index's candidate lists for a packet: each sorted by
    /// position.
    fn candidates(&self, h: &Headers) -> [&[Cand]; 3] {
        let proto = match &h.l3 {
            Some(L3::Ipv4(ip)) => Some(ip.proto),
            Some(L3::Ipv6(ip)) => Some(ip.proto),
            _ => None,
        };
        let dport = match &h.l4 {
            Some(L4::Tcp(t)) => Some(t.dst_port),
            Some(L4::Udp(u)) => Some(u.dst_port),
            _ => None,
        };
        let empty: &[Cand] = &[];
        let by_proto = proto
            .and_then(|p| self.by_proto.iter().find(|(q, _)| *q == p))
            .map_or(empty, |(_, list)| list.as_slice());
        let by_port = match (proto, dport) {
            (Some(p), Some(d)) => self.by_port.get(&(p, d)).map_or(empty, Vec::as_slice),
            _ => empty,
        };
        [&self.any, by_proto, by_port]
    }

    /// The destination index's candidate lists for a packet, after
    /// `lists`.
    fn dst_candidates<'a>(&'a self, h: &Headers, lists: &mut Lists<'a>) {
        let dst = match &h.l3 {
            Some(L3::Ipv4(ip)) => IpAddr::V4(ip.dst),
            Some(L3::Ipv6(ip)) => IpAddr::V6(ip.dst),
            _ => return,
        };
        self.dst.lists(dst, lists);
    }
}

impl RuleTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Check a rule before adding it.
    pub fn validate(spec: &RuleSpec) -> Result<(), RuleError> {
        for p in &spec.predicates {
            p.validate().map_err(RuleError::Predicate)?;
        }
        Ok(())
    }

    /// Add a validated rule with the id the port assigned.
    pub fn add(&mut self, id: RuleId, spec: RuleSpec) -> Result<(), RuleError> {
        if self.rules.len() >= MAX_RULES {
            return Err(RuleError::TooManyRules);
        }
        Self::validate(&spec)?;
        let rule = Rule { id, spec, hits: AtomicU64::new(0) };
        let key = rule.sort_key();
        let at = self.rules.partition_point(|r| r.sort_key() < key);
        self.rules.insert(at, rule);
        self.index = RuleIndex::build(&self.rules);
        Ok(())
    }

    /// Remove a rule.
    pub fn remove(&mut self, id: RuleId) -> Result<RuleSpec, RuleError> {
        let at = self.rules.iter().position(|r| r.id == id).ok_or(RuleError::NoSuchRule(id))?;
        let spec = self.rules.remove(at).spec;
        self.index = RuleIndex::build(&self.rules);
        Ok(spec)
    }

    /// Replace the whole table with `specs`, keeping the id (and hit
    /// count) of every current rule whose spec is the same as a new one
    /// ([`RuleSpec::same_as`]); new rules get ids from `next_id`. All
    /// specs are checked first: on an error the table is unchanged.
    pub fn update(
        &mut self,
        specs: Vec<RuleSpec>,
        mut next_id: impl FnMut() -> RuleId,
    ) -> Result<Vec<RuleId>, RuleError> {
        if specs.len() > MAX_RULES {
            return Err(RuleError::TooManyRules);
        }
        for s in &specs {
            Self::validate(s)?;
        }
        let mut old = core::mem::take(&mut self.rules);
        let mut ids = Vec::with_capacity(specs.len());
        for spec in specs {
            let rule = match old.iter().position(|r| r.spec.same_as(&spec)) {
                Some(at) => old.swap_remove(at),
                None => Rule { id: next_id(), spec, hits: AtomicU64::new(0) },
            };
            ids.push(rule.id);
            self.rules.push(rule);
        }
        self.rules.sort_by_key(Rule::sort_key);
        self.index = RuleIndex::build(&self.rules);
        Ok(ids)
    }

    /// The first rule that matches, counting the hit.
    pub fn find(&self, ctx: &MatchCtx<'_>) -> Option<&Rule> {
        let r = self.peek(ctx)?;
        r.hits.fetch_add(1, Ordering::Relaxed);
        Some(r)
    }

    /// The first rule that matches, without counting (for re-checks):
    /// the candidates the index gives, merged in evaluation order.
    pub fn peek(&self, ctx: &MatchCtx<'_>) -> Option<&Rule> {
        let base = self.index.candidates(ctx.hdrs);
        if self.index.dst.blocks.is_empty() {
            // Three lists, known here: the merge below unrolls.
            return self.first_match(&base, &mut [0; 3], ctx);
        }
        let mut lists = Lists::new();
        for l in base {
            // Room for these three and a list per prefix length.
            let _ = lists.try_push(l);
        }
        self.index.dst_candidates(ctx.hdrs, &mut lists);
        self.first_match(&lists, &mut [0; 3 + MAX_DST_LENS], ctx)
    }

    /// The first rule, in evaluation order, among `lists` (each sorted
    /// by position; `at` holds a cursor per list, all 0) that matches.
    #[inline(always)]
    fn first_match(
        &self,
        lists: &[&[Cand]],
        at: &mut [usize],
        ctx: &MatchCtx<'_>,
    ) -> Option<&Rule> {
        let kind = frame_kind::of(ctx.hdrs);
        // Each turn moves one cursor forward: at most as many turns as
        // the lists hold candidates.
        loop {
            // The lowest next position among the lists.
            let mut best: Option<(usize, Cand)> = None;
            for (i, l) in lists.iter().enumerate() {
                if let Some(&c) = at.get(i).and_then(|&a| l.get(a))
                    && best.is_none_or(|(_, b)| c.pos < b.pos)
                {
                    best = Some((i, c));
                }
            }
            let (i, c) = best?;
            if let Some(a) = at.get_mut(i) {
                *a += 1;
            }
            if c.kinds & kind == 0 {
                continue;
            }
            let Some(r) = usize::try_from(c.pos).ok().and_then(|p| self.rules.get(p)) else {
                continue;
            };
            if r.matches(ctx) {
                return Some(r);
            }
        }
    }

    /// The rules in evaluation order.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True with no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

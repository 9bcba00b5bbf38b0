//! Rules and the ordered rule table of one layer direction.
//!
//! A rule is a priority, a list of predicates (all must match) and an
//! action. The table keeps rules in evaluation order: lower priority
//! first; at equal priority, deny rules before the others; then the order
//! they were added in (their [`RuleId`], which never repeats), so the
//! outcome never depends on anything but the configuration. A table holds
//! at most [`MAX_RULES`] rules; adding one more is refused.

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use super::action::Action;
use super::predicate::{MatchCtx, Predicate, PredicateError};

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
}

impl RuleTable {
    /// An empty table.
    pub const fn new() -> Self {
        Self { rules: Vec::new() }
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
        Ok(())
    }

    /// Remove a rule.
    pub fn remove(&mut self, id: RuleId) -> Result<RuleSpec, RuleError> {
        let at = self.rules.iter().position(|r| r.id == id).ok_or(RuleError::NoSuchRule(id))?;
        Ok(self.rules.remove(at).spec)
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
        Ok(ids)
    }

    /// The first rule that matches, counting the hit.
    pub fn find(&self, ctx: &MatchCtx<'_>) -> Option<&Rule> {
        let r = self.rules.iter().find(|r| r.matches(ctx))?;
        r.hits.fetch_add(1, Ordering::Relaxed);
        Some(r)
    }

    /// The first rule that matches, without counting (for re-checks).
    pub fn peek(&self, ctx: &MatchCtx<'_>) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(ctx))
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

//! The result side of a session: `post_request` for one response shape, and
//! a per-session cache of result plans so the same shape is not decided
//! again within a second. The plan type is the protocol's own (PostgreSQL
//! keeps a row mask plan); the cache only knows when a plan may be reused.
//!
//! A plan is keyed by the response's shape as the protocol describes it
//! (PostgreSQL: the RowDescription bytes), plus either the request's shape
//! (kind, tables, …) or, when a result column is computed or the policies
//! read the request text, the whole text; plus the wall-clock second when
//! the policies read the time. Policy errors and a new policy generation
//! are never served from the cache.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gate_policy::{
    PolicyEngine, PolicyInput, QueryInfo, ResponseColumn, ResponseInfo, Reuse, Stage, TimeInfo,
    Verdict,
};

use super::Session;
use super::verdicts;
use crate::fasthash::{FastHasher, PrehashedMap};

/// How long a result plan is reused for the same shape.
const PLAN_TTL: Duration = Duration::from_secs(1);
/// Result shapes remembered per session.
const PLAN_CAPACITY: usize = 256;

/// What one result is, for the cache.
#[derive(Debug, Clone, Copy)]
pub struct ResultShape<'a> {
    /// The response's shape as the protocol sees it (column descriptions).
    pub description: &'a [u8],
    /// Some output is computed, so whether it derives from a masked source
    /// depends on the request text: key by the text.
    pub computed: bool,
    /// The request text that produced the result.
    pub text: &'a Arc<str>,
    /// The request's classification, when it has one.
    pub query: Option<&'a QueryInfo>,
}

/// What, besides the description, a cached plan is keyed by.
#[derive(Debug)]
enum Context {
    Text(Arc<str>),
    Shape(Option<Box<QueryInfo>>),
}

#[derive(Debug)]
struct Cached<P> {
    description: Vec<u8>,
    context: Context,
    second: Option<i64>,
    plan: P,
    verdict: Arc<Verdict>,
    at: Instant,
}

/// Where a plan decided on a miss may be remembered.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    hash: u64,
    second: Option<i64>,
    by_text: bool,
}

/// One session's recent result plans.
#[derive(Debug)]
pub struct PlanCache<P> {
    entries: PrehashedMap<Cached<P>>,
    generation: u64,
    /// How plans may be reused under that generation; `None` until asked.
    reuse: Option<Option<(bool, Reuse)>>,
}

impl<P> Default for PlanCache<P> {
    fn default() -> Self {
        Self {
            entries: PrehashedMap::default(),
            generation: 0,
            reuse: None,
        }
    }
}

impl<P: Clone> PlanCache<P> {
    /// The cached plan and verdict for `shape`, or, on a miss, the slot to
    /// remember a new plan in (`None` when the policies allow no reuse).
    pub fn get(
        &mut self,
        session: &Session<'_>,
        shape: &ResultShape<'_>,
    ) -> Result<(P, Arc<Verdict>), Option<Slot>> {
        let generation = session.gate.live.generation();
        if self.generation != generation || self.reuse.is_none() {
            self.entries.clear();
            self.generation = generation;
            self.reuse = Some(plan_reuse(
                &session.gate.live.engine(),
                &session.resource.name,
            ));
        }
        let Some((by_text, reuse)) = self.reuse.flatten() else {
            return Err(None);
        };
        let by_text = by_text || shape.computed;
        let second =
            (reuse == Reuse::WithinSecond).then(|| TimeInfo::now().unix_ns / 1_000_000_000);
        let hash = hash_key(shape, by_text, second);
        let slot = Slot {
            hash,
            second,
            by_text,
        };
        match self.entries.get(&hash) {
            Some(hit)
                if hit.description == shape.description
                    && hit.second == second
                    && hit.at.elapsed() < PLAN_TTL
                    && same_context(&hit.context, shape, by_text) =>
            {
                Ok((hit.plan.clone(), hit.verdict.clone()))
            }
            _ => Err(Some(slot)),
        }
    }

    /// Remember `plan` for `shape` (verdicts with policy errors are not kept).
    pub fn put(&mut self, slot: Slot, shape: &ResultShape<'_>, plan: P, verdict: Arc<Verdict>) {
        if !verdict.errors.is_empty() {
            return;
        }
        let context = if slot.by_text {
            Context::Text(shape.text.clone())
        } else {
            Context::Shape(shape.query.map(|q| Box::new(verdicts::shape_of(q))))
        };
        if self.entries.len() >= PLAN_CAPACITY {
            self.entries.clear();
        }
        self.entries.insert(
            slot.hash,
            Cached {
                description: shape.description.to_vec(),
                context,
                second: slot.second,
                plan,
                verdict,
                at: Instant::now(),
            },
        );
    }
}

/// What a protocol did with one result, for its span and audit.
#[derive(Debug, Clone, Copy)]
pub enum ResultOutcome<'a> {
    Pass,
    Mask,
    /// Refused with this reason.
    Refuse(&'a str),
}

impl Session<'_> {
    /// Record what was done with a result of `request` (audit event `id`)
    /// under `verdict`: the action on the request's span, and a `result`
    /// audit event when it was masked or refused.
    pub fn result_decided(
        &self,
        id: Option<super::AuditId>,
        text: &Arc<str>,
        verdict: &Arc<Verdict>,
        outcome: ResultOutcome<'_>,
    ) {
        let action = match outcome {
            ResultOutcome::Refuse(_) => gate_policy::Action::Block,
            _ => verdict.action,
        };
        self.result_action(id, action);
        let text = super::AuditText::Text(text.clone());
        match outcome {
            ResultOutcome::Pass => {}
            ResultOutcome::Mask => self.audit("result", text, verdict),
            ResultOutcome::Refuse(reason) => {
                let mut refused = (**verdict).clone();
                refused.action = gate_policy::Action::Block;
                refused.reason = Some(reason.to_owned());
                self.audit("result", text, &Arc::new(refused));
            }
        }
    }

    /// Evaluate `post_request` for a result of `columns` produced by `query`.
    pub fn post_request(&self, query: Option<QueryInfo>, columns: Vec<ResponseColumn>) -> Verdict {
        self.evaluate(
            Stage::PostRequest,
            PolicyInput {
                time: Some(TimeInfo::now()),
                query,
                response: Some(ResponseInfo {
                    columns,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
    }
}

/// How result plans may be reused under the policies in force: keyed by
/// shape or by text, and whether within one wall-clock second only; `None`
/// when `post_request` must run for every result.
fn plan_reuse(engine: &PolicyEngine, resource: &str) -> Option<(bool, Reuse)> {
    let by_shape: Vec<&str> = verdicts::SHAPE
        .iter()
        .copied()
        .chain(["response"])
        .collect();
    match engine.reuse(Stage::PostRequest, resource, &by_shape) {
        Reuse::Never => {}
        reuse => return Some((false, reuse)),
    }
    let by_text: Vec<&str> = by_shape
        .iter()
        .copied()
        .chain(["query.raw", "query.statement"])
        .collect();
    match engine.reuse(Stage::PostRequest, resource, &by_text) {
        Reuse::Never => None,
        reuse => Some((true, reuse)),
    }
}

fn hash_key(shape: &ResultShape<'_>, by_text: bool, second: Option<i64>) -> u64 {
    let mut h = FastHasher::default();
    shape.description.hash(&mut h);
    match (by_text, shape.query) {
        (true, _) => shape.text.hash(&mut h),
        (false, Some(q)) => verdicts::hash_shape(q, &mut h),
        (false, None) => {}
    }
    second.hash(&mut h);
    h.finish()
}

fn same_context(cached: &Context, shape: &ResultShape<'_>, by_text: bool) -> bool {
    match (cached, by_text, shape.query) {
        (Context::Text(t), true, _) => **t == **shape.text,
        (Context::Shape(Some(a)), false, Some(b)) => verdicts::same_shape(a, b),
        (Context::Shape(None), false, None) => true,
        _ => false,
    }
}

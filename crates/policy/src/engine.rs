//! The policy engine: compiles each policy once to regorus bytecode (RVM) and
//! evaluates stage rules from many tasks at once, each evaluation on a pooled
//! VM (no engine clone per call), under an instruction and time budget.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};

use crate::combine::{DefaultAction, PolicyOutcome, Rollout, Verdict, combine};
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::glob::glob_match;
use crate::input::{PolicyInput, Stage};
use crate::reads::{InputReads, Reuse};
use crate::rule_graph::{MAX_RULE_CHAIN, RuleGraph};
use crate::source_limits;

/// One Rego source file of a policy.
#[derive(Debug, Clone)]
pub struct PolicyModule {
    /// Where it came from (a path, or a name like `managed/pii.rego`), shown in errors.
    pub origin: String,
    pub source: String,
}

/// A policy to load: one or more modules plus how and where it applies.
#[derive(Debug, Clone)]
pub struct PolicySpec {
    pub name: String,
    pub modules: Vec<PolicyModule>,
    pub rollout: Rollout,
    /// Resource names or shell globs; empty = every resource.
    pub targets: Vec<String>,
    /// Stages to evaluate; `None` = every stage rule the policy defines.
    pub stages: Option<BTreeSet<Stage>>,
}

impl PolicySpec {
    /// An active policy for every resource and stage, from source text.
    pub fn from_source(
        name: impl Into<String>,
        origin: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            modules: vec![PolicyModule {
                origin: origin.into(),
                source: source.into(),
            }],
            rollout: Rollout::Active,
            targets: Vec::new(),
            stages: None,
        }
    }

    /// An active policy for every resource and stage, read from a file; its
    /// name is the file stem.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let source = std::fs::read_to_string(path).map_err(|e| PolicyError::Read {
            policy: name.clone(),
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self::from_source(name, path.display().to_string(), source))
    }
}

/// Budgets for one rule evaluation; exceeding either blocks (fail closed).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// VM instructions per rule evaluation.
    pub max_instructions: usize,
    /// Wall-clock time per rule evaluation.
    pub max_duration: Duration,
    /// Largest string (bytes) or collection (elements) one builtin call may build.
    pub max_builtin_output: usize,
    /// Largest sum of what every builtin call of one rule evaluation builds
    /// (measured the same way): with the budgets above, it bounds the memory
    /// one evaluation can take.
    pub max_builtin_output_total: usize,
    /// Wall-clock time to compile one policy (checked after the source limits
    /// of [`crate::source_limits`] have bounded it).
    pub max_compile_duration: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_instructions: 250_000,
            max_duration: Duration::from_millis(50),
            max_builtin_output: 1 << 20,
            max_builtin_output_total: 16 << 20,
            max_compile_duration: Duration::from_secs(2),
        }
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    pub default_action: DefaultAction,
    pub limits: Limits,
    /// The `data` document visible to every policy.
    pub data: Option<serde_json::Value>,
}

/// A compiled policy ready for concurrent evaluation.
struct CompiledUnit {
    name: String,
    rollout: Rollout,
    targets: Vec<String>,
    /// Entry points (`data.<package>.<stage>`) per stage index.
    entries: [Vec<String>; 3],
    program: Arc<Program>,
    /// The parts of `input` the policy reads.
    reads: InputReads,
    /// Idle VMs with the program loaded; taken for one evaluation, then returned.
    vms: Mutex<Vec<RegoVM>>,
}

impl std::fmt::Debug for CompiledUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledUnit")
            .field("name", &self.name)
            .field("rollout", &self.rollout)
            .field("targets", &self.targets)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

/// Compiled policies plus the default action; cheap to share (`Arc`) and
/// safe to evaluate from many tasks at once.
#[derive(Debug)]
pub struct PolicyEngine {
    units: Vec<CompiledUnit>,
    options: EngineOptions,
    data: Value,
}

impl PolicyEngine {
    /// Compile every spec. All problems are reported at once.
    pub fn new(specs: Vec<PolicySpec>, options: EngineOptions) -> Result<Self, Vec<PolicyError>> {
        let mut units = Vec::with_capacity(specs.len());
        let mut errors = Vec::new();
        for spec in specs {
            match compile_bounded(spec, options.limits.max_compile_duration) {
                Ok(unit) => units.push(unit),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let data = options
            .data
            .clone()
            .map(Value::from)
            .unwrap_or_else(Value::new_object);
        Ok(Self {
            units,
            options,
            data,
        })
    }

    /// The engine's settings.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Names of the loaded policies.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.units.iter().map(|u| u.name.as_str())
    }

    /// Whether any non-draft policy has a rule for `stage` on `resource`.
    pub fn has_rules_for(&self, stage: Stage, resource: &str) -> bool {
        self.units.iter().any(|u| {
            u.rollout != Rollout::Draft
                && !u.entries[stage.index()].is_empty()
                && targets(u, resource)
        })
    }

    /// Whether a verdict of `stage` on `resource` can be reused for another
    /// request of the same session that agrees on every `keyed` input path
    /// (dotted, like `query.type`): the union of what the policies that
    /// would run read decides (see [`InputReads::reuse`]).
    pub fn reuse(&self, stage: Stage, resource: &str, keyed: &[&str]) -> Reuse {
        let mut reads = InputReads::default();
        for unit in &self.units {
            if unit.rollout != Rollout::Draft
                && !unit.entries[stage.index()].is_empty()
                && targets(unit, resource)
            {
                reads.extend(&unit.reads);
            }
        }
        reads.reuse(keyed)
    }

    /// Evaluate `stage` for `resource` with a typed input.
    pub fn evaluate_input(&self, stage: Stage, resource: &str, input: &PolicyInput) -> Verdict {
        self.evaluate(stage, resource, &input.to_value(stage))
    }

    /// Evaluate `stage` for `resource` with a prepared `input` document and combine.
    pub fn evaluate(&self, stage: Stage, resource: &str, input: &Value) -> Verdict {
        let mut outcomes = Vec::new();
        for unit in &self.units {
            if unit.rollout == Rollout::Draft || !targets(unit, resource) {
                continue;
            }
            for entry in &unit.entries[stage.index()] {
                outcomes.push(PolicyOutcome {
                    policy: unit.name.clone(),
                    rollout: unit.rollout,
                    result: self.run(unit, entry, stage, input),
                });
            }
        }
        // The default action admits or refuses sessions and requests; a
        // response with no post_request opinion passes unchanged.
        let default = match stage {
            Stage::PostRequest => DefaultAction::Allow,
            Stage::Session | Stage::PreRequest => self.options.default_action,
        };
        combine(outcomes, default, resource)
    }

    fn run(
        &self,
        unit: &CompiledUnit,
        entry: &str,
        stage: Stage,
        input: &Value,
    ) -> Result<Option<Decision>, PolicyError> {
        let pooled = unit.vms.lock().ok().and_then(|mut vms| vms.pop());
        let mut vm = match pooled {
            Some(vm) => vm,
            None => self.new_vm(unit)?,
        };
        vm.set_input(input.clone());
        match vm.execute_entry_point_by_name(entry) {
            Ok(value) => {
                if let Ok(mut vms) = unit.vms.lock() {
                    vms.push(vm);
                }
                Decision::from_value(&unit.name, stage, &value)
            }
            // A VM that failed mid-run is dropped, not reused.
            Err(e) => Err(vm_error(&unit.name, entry, e)),
        }
    }

    fn new_vm(&self, unit: &CompiledUnit) -> Result<RegoVM, PolicyError> {
        let mut vm = RegoVM::new();
        vm.load_program(unit.program.clone());
        vm.set_max_instructions(self.options.limits.max_instructions);
        // A failing builtin, or two values of one complete rule, is an error
        // that blocks (fail closed), not an undefined value (patched regorus).
        vm.set_strict_builtin_errors(true);
        vm.set_max_builtin_output(Some(self.options.limits.max_builtin_output));
        vm.set_max_builtin_output_total(Some(self.options.limits.max_builtin_output_total));
        vm.set_execution_timer_config(Some(ExecutionTimerConfig {
            limit: self.options.limits.max_duration,
            check_interval: NonZeroU32::MIN.saturating_add(63),
        }));
        vm.set_data(self.data.clone())
            .map_err(|e| PolicyError::Evaluation {
                policy: unit.name.clone(),
                rule: "data".to_owned(),
                message: e.to_string(),
            })?;
        Ok(vm)
    }
}

fn targets(unit: &CompiledUnit, resource: &str) -> bool {
    unit.targets.is_empty() || unit.targets.iter().any(|t| glob_match(t, resource))
}

fn vm_error(policy: &str, rule: &str, error: VmError) -> PolicyError {
    let message = one_line_vm_message(&error.to_string());
    let limit = matches!(
        error,
        VmError::InstructionLimitExceeded { .. }
            | VmError::TimeLimitExceeded { .. }
            | VmError::MemoryLimitExceeded { .. }
            | VmError::MemoryBudgetExceeded { .. }
            | VmError::RegexSizeLimitExceeded { .. }
            | VmError::BuiltinOutputLimitExceeded { .. }
            | VmError::BuiltinOutputTotalExceeded { .. }
    );
    if limit {
        PolicyError::Limit {
            policy: policy.to_owned(),
            rule: rule.to_owned(),
            message,
        }
    } else {
        PolicyError::Evaluation {
            policy: policy.to_owned(),
            rule: rule.to_owned(),
            message,
        }
    }
}

/// A builtin's error arrives as a multi-line diagnostic pointing at an empty
/// `<builtin>` source; keep the first line's prefix and the `error:` text.
fn one_line_vm_message(text: &str) -> String {
    let Some((head, rest)) = text.split_once('\n') else {
        return text.to_owned();
    };
    match rest
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("error: "))
    {
        Some(message) => format!("{} {}", head.trim_end(), message.trim()),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// Stack for the compile thread: parsing and lowering recurse per nesting level.
const COMPILE_STACK_BYTES: usize = 64 * 1024 * 1024;

/// [`compile`] on its own thread (a large stack, off the caller's runtime),
/// refused when it takes longer than `budget`.
fn compile_bounded(spec: PolicySpec, budget: Duration) -> Result<CompiledUnit, Vec<PolicyError>> {
    let name = spec.name.clone();
    let compile_error = |message: String| {
        vec![PolicyError::Compile {
            policy: name.clone(),
            message,
        }]
    };
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("gate-policy-compile".to_owned())
        .stack_size(COMPILE_STACK_BYTES)
        .spawn(move || {
            // The receiver may have given up; nothing is left to tell.
            let _ = send.send(compile(spec));
        });
    if let Err(e) = spawned {
        return Err(compile_error(format!(
            "cannot start the compiler thread: {e}"
        )));
    }
    match receive.recv_timeout(budget) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(compile_error(format!(
            "compiling took longer than the limit of {} ms",
            budget.as_millis()
        ))),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(compile_error(
            "the compiler stopped without a result".to_owned(),
        )),
    }
}

/// Parse, compile and lower one policy to bytecode.
fn compile(spec: PolicySpec) -> Result<CompiledUnit, Vec<PolicyError>> {
    let compile_error = |message: String| PolicyError::Compile {
        policy: spec.name.clone(),
        message,
    };
    let mut engine = Engine::new();
    let mut packages = Vec::new();
    let mut errors = Vec::new();
    for module in &spec.modules {
        if let Err(message) = source_limits::check(&module.origin, &module.source) {
            errors.push(compile_error(message));
            continue;
        }
        match engine.add_policy(module.origin.clone(), module.source.clone()) {
            Ok(package) => {
                if !packages.contains(&package) {
                    packages.push(package);
                }
            }
            Err(e) => errors.push(compile_error(render_engine_error(&e.to_string()))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let graph = RuleGraph::of_modules(engine.get_modules().iter().map(|m| &**m));
    if let Some(cycle) = graph.recursion() {
        return Err(vec![compile_error(cycle)]);
    }
    if let (depth, at) = graph.longest_chain()
        && depth > MAX_RULE_CHAIN
    {
        return Err(vec![compile_error(format!(
            "{}: the chain of rules that starts here is {depth} deep, over the limit of {MAX_RULE_CHAIN}",
            at.unwrap_or_default()
        ))]);
    }
    let reads = InputReads::of_modules(engine.get_modules().iter().map(|m| &**m));
    let mut entries: [Vec<String>; 3] = Default::default();
    let mut all_entries = Vec::new();
    // A stage rule exists when it lowers to bytecode on its own (this also
    // finds rules that only have a `default`).
    let mut compiled = None;
    for stage in Stage::ALL {
        for package in &packages {
            let path = format!("{package}.{stage}");
            let policy = match engine.compile_with_entrypoint(&path.as_str().into()) {
                Ok(policy) => policy,
                Err(e) if is_missing_rule(&e.to_string()) => continue,
                Err(e) => return Err(vec![compile_error(render_engine_error(&e.to_string()))]),
            };
            match Compiler::compile_from_policy(&policy, &[path.as_str()]) {
                Ok(_) => {
                    entries[stage.index()].push(path.clone());
                    all_entries.push(path);
                    compiled.get_or_insert(policy);
                }
                Err(e) if is_missing_rule(&e.to_string()) => {}
                Err(e) => return Err(vec![compile_error(render_engine_error(&e.to_string()))]),
            }
        }
    }
    let Some(compiled) = compiled else {
        return Err(vec![compile_error(format!(
            "defines none of the rules session, pre_request, post_request (packages: {})",
            packages.join(", ")
        ))]);
    };
    if let Some(wanted) = &spec.stages {
        for stage in Stage::ALL {
            if !wanted.contains(&stage) {
                entries[stage.index()].clear();
            } else if entries[stage.index()].is_empty() {
                errors.push(compile_error(format!(
                    "is configured for stage {stage} but defines no `{stage}` rule (packages: {})",
                    packages.join(", ")
                )));
            }
        }
        all_entries.retain(|e| entries.iter().any(|list| list.contains(e)));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let refs: Vec<&str> = all_entries.iter().map(String::as_str).collect();
    let program = Compiler::compile_from_policy(&compiled, &refs)
        .map_err(|e| vec![compile_error(render_engine_error(&e.to_string()))])?;
    Ok(CompiledUnit {
        name: spec.name,
        rollout: spec.rollout,
        targets: spec.targets,
        entries,
        program,
        reads,
        vms: Mutex::new(Vec::new()),
    })
}

fn is_missing_rule(text: &str) -> bool {
    text.contains("no definitions found")
        || text.contains("not found")
        || text.contains("not a valid rule")
}

/// Turn regorus's multi-line diagnostics (`--> file:line:col`, snippet,
/// `error: msg`) into `file:line:col: msg`, keeping the snippet below.
pub(crate) fn render_engine_error(text: &str) -> String {
    let location = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("--> "))
        .map(str::trim);
    let message = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("error: "))
        .map(str::trim);
    match (location, message) {
        (Some(location), Some(message)) => {
            let snippet: Vec<&str> = text
                .lines()
                .filter(|l| {
                    let t = l.trim_start();
                    !t.is_empty() && !t.starts_with("-->") && !t.starts_with("error: ")
                })
                .collect();
            if snippet.is_empty() {
                format!("{location}: {message}")
            } else {
                format!("{location}: {message}\n{}", snippet.join("\n"))
            }
        }
        _ => text.trim().to_owned(),
    }
}

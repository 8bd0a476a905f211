//! The PolicyCache: which image a task runs in, chosen from the hub's `adjutant_image_policy`.
//!
//! The policy is the tag extra `adjutant_image_policy`, read through `getBuildConfig(tag, event)`
//! so that tag inheritance applies. One cache serves every task of the worker (the earlier Python
//! version rebuilt it per task, so it never helped).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::FutureExt;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::HubError;
use crate::hub::HostHub;
use crate::poller::StopActor;
use crate::registry::panic_message;
use crate::supervisor::{ChildLink, ExitReason, ReportWarning};

pub const POLICY_EXTRA_KEY: &str = "adjutant_image_policy";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    // Declared most specific first: precedence follows this order, not the list order.
    TagArch,
    Tag,
    TaskType,
    Default,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyRule {
    pub kind: RuleKind,
    /// Shell-style glob, for `tag_arch` and `tag`.
    pub tag: Option<String>,
    /// Shell-style glob, for `tag_arch`.
    pub arch: Option<String>,
    pub task_type: Option<String>,
    pub image: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ImagePolicy {
    pub rules: Vec<PolicyRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{POLICY_EXTRA_KEY} is not valid JSON: {0}")]
    Json(String),
    #[error("{POLICY_EXTRA_KEY} must be a JSON object with a \"rules\" list, found {0}")]
    Shape(String),
    #[error("{POLICY_EXTRA_KEY} rule {index} is invalid: {message}")]
    Rule { index: usize, message: String },
}

impl ImagePolicy {
    /// Parses the tag extra: a JSON string or an already decoded struct, optionally wrapped as
    /// `{"adjutant_image_policy": {...}}`.
    pub fn parse(value: &Value) -> Result<Self, PolicyError> {
        let decoded;
        let mut value = match value {
            Value::String(text) => {
                decoded = serde_json::from_str::<Value>(text)
                    .map_err(|e| PolicyError::Json(e.to_string()))?;
                &decoded
            }
            other => other,
        };
        if let Some(inner) = value.get(POLICY_EXTRA_KEY) {
            value = inner;
        }
        let rules = value
            .get("rules")
            .and_then(Value::as_array)
            .ok_or_else(|| PolicyError::Shape(describe(value)))?;
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                parse_rule(rule).map_err(|message| PolicyError::Rule { index, message })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rules })
    }

    /// The image for a task, by specificity: `tag_arch` > `tag` > `task_type` > `default`.
    /// Among rules of one kind the first listed that matches wins.
    pub fn resolve(&self, tag: &str, arch: &str, task_type: &str) -> Option<(&str, RuleKind)> {
        let matches = |rule: &PolicyRule| match rule.kind {
            RuleKind::TagArch => {
                glob_match(rule.tag.as_deref().unwrap_or(""), tag)
                    && glob_match(rule.arch.as_deref().unwrap_or(""), arch)
            }
            RuleKind::Tag => glob_match(rule.tag.as_deref().unwrap_or(""), tag),
            RuleKind::TaskType => rule.task_type.as_deref() == Some(task_type),
            RuleKind::Default => true,
        };
        [
            RuleKind::TagArch,
            RuleKind::Tag,
            RuleKind::TaskType,
            RuleKind::Default,
        ]
        .into_iter()
        .find_map(|kind| {
            self.rules
                .iter()
                .find(|rule| rule.kind == kind && matches(rule))
                .map(|rule| (rule.image.as_str(), kind))
        })
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        Value::Number(_) => "a number".to_owned(),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(map) => format!(
            "an object with keys [{}]",
            map.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

fn parse_rule(rule: &Value) -> Result<PolicyRule, String> {
    let field = |name: &str| -> Option<String> {
        rule.get(name).and_then(Value::as_str).map(str::to_owned)
    };
    let required = |name: &str| -> Result<String, String> {
        field(name).ok_or_else(|| format!("missing string field \"{name}\""))
    };
    let kind = match required("type")?.as_str() {
        "tag_arch" => RuleKind::TagArch,
        "tag" => RuleKind::Tag,
        "task_type" => RuleKind::TaskType,
        "default" => RuleKind::Default,
        other => {
            return Err(format!(
                "unknown type \"{other}\"; use tag_arch, tag, task_type or default"
            ));
        }
    };
    let image = required("image")?;
    if image.trim().is_empty() {
        return Err("\"image\" is empty".to_owned());
    }
    Ok(PolicyRule {
        kind,
        tag: match kind {
            RuleKind::TagArch | RuleKind::Tag => Some(required("tag")?),
            _ => None,
        },
        arch: match kind {
            RuleKind::TagArch => Some(required("arch")?),
            _ => None,
        },
        task_type: match kind {
            RuleKind::TaskType => Some(required("task_type")?),
            _ => None,
        },
        image,
    })
}

/// Shell-style matching as Python's `fnmatch.fnmatchcase`: `*`, `?`, `[abc]`, `[!abc]`, ranges.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    glob_at(&pattern, &text)
}

fn glob_at(pattern: &[char], text: &[char]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some('*') => (0..=text.len()).any(|skip| glob_at(&pattern[1..], &text[skip..])),
        Some('?') => !text.is_empty() && glob_at(&pattern[1..], &text[1..]),
        Some('[') => match (text.first(), class_end(pattern)) {
            (Some(&c), Some(end)) => {
                class_matches(&pattern[1..end], c) && glob_at(&pattern[end + 1..], &text[1..])
            }
            // An unclosed '[' is a literal, as in fnmatch.
            (Some(&c), None) => c == '[' && glob_at(&pattern[1..], &text[1..]),
            (None, _) => false,
        },
        Some(&literal) => text.first() == Some(&literal) && glob_at(&pattern[1..], &text[1..]),
    }
}

fn class_end(pattern: &[char]) -> Option<usize> {
    let mut index = 1;
    if pattern.get(index) == Some(&'!') {
        index += 1;
    }
    if pattern.get(index) == Some(&']') {
        index += 1;
    }
    (index..pattern.len()).find(|&i| pattern[i] == ']')
}

fn class_matches(class: &[char], c: char) -> bool {
    let (negated, class) = match class.first() {
        Some('!') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut found = false;
    let mut i = 0;
    while i < class.len() {
        if i + 2 < class.len() && class[i + 1] == '-' {
            if class[i] <= c && c <= class[i + 2] {
                found = true;
            }
            i += 3;
        } else {
            if class[i] == c {
                found = true;
            }
            i += 1;
        }
    }
    found != negated
}

/// Where a resolved image came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    Rule(RuleKind),
    /// No policy, no matching rule, or no tag: `task_image_default`.
    ConfigDefault,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedImage {
    pub image: String,
    pub source: ImageSource,
}

/// Which image should this task run in?
#[derive(Debug, Clone, Message)]
#[rtype(result = "ResolvedImage")]
pub struct ResolveImage {
    /// The build tag; `None` for tasks without one (they get the config default).
    pub tag: Option<String>,
    pub event: Option<i64>,
    pub arch: String,
    pub task_type: String,
}

/// Forget cached policies: one tag, or all when `tag` is `None`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct InvalidatePolicy {
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "PolicyDump")]
pub struct DumpPolicy;

/// New live settings after SIGHUP.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct UpdatePolicySettings {
    pub enabled: bool,
    pub ttl: Duration,
    pub default_image: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PolicyDump {
    pub entries: Vec<PolicyDumpEntry>,
    pub hits: u64,
    pub misses: u64,
    pub hub_errors: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyDumpEntry {
    pub tag: String,
    pub event: Option<i64>,
    pub age_seconds: u64,
    /// `ok`, `no policy`, or the parse error.
    pub status: String,
    pub rules: Vec<PolicyRule>,
}

type CacheKey = (String, Option<i64>);

#[derive(Debug, Clone)]
enum Cached {
    /// The tag (with inheritance) carries no policy.
    Absent,
    Valid(Arc<ImagePolicy>),
    Invalid(PolicyError),
}

#[derive(Debug, Clone)]
struct CacheEntry {
    value: Cached,
    fetched: Instant,
}

pub struct PolicyCache {
    hub: Arc<dyn HostHub>,
    enabled: bool,
    ttl: Duration,
    default_image: String,
    entries: HashMap<CacheKey, CacheEntry>,
    /// The last valid policy per key, for hub outages and bad edits.
    last_good: HashMap<CacheKey, Arc<ImagePolicy>>,
    inflight: HashMap<CacheKey, Vec<(ResolveImage, oneshot::Sender<ResolvedImage>)>>,
    invalid_reported: HashMap<String, Instant>,
    hits: u64,
    misses: u64,
    hub_errors: u64,
    link: ChildLink,
    warnings: Recipient<ReportWarning>,
    exit_reason: ExitReason,
}

impl PolicyCache {
    pub fn new(
        hub: Arc<dyn HostHub>,
        enabled: bool,
        ttl: Duration,
        default_image: String,
        link: ChildLink,
        warnings: Recipient<ReportWarning>,
    ) -> Self {
        Self {
            hub,
            enabled,
            ttl,
            default_image,
            entries: HashMap::new(),
            last_good: HashMap::new(),
            inflight: HashMap::new(),
            invalid_reported: HashMap::new(),
            hits: 0,
            misses: 0,
            hub_errors: 0,
            link,
            warnings,
            exit_reason: ExitReason::Stopped,
        }
    }

    fn config_default(&self) -> ResolvedImage {
        ResolvedImage {
            image: self.default_image.clone(),
            source: ImageSource::ConfigDefault,
        }
    }

    fn answer(&self, policy: Option<&ImagePolicy>, request: &ResolveImage) -> ResolvedImage {
        let tag = request.tag.as_deref().unwrap_or_default();
        policy
            .and_then(|p| p.resolve(tag, &request.arch, &request.task_type))
            .map(|(image, kind)| ResolvedImage {
                image: image.to_owned(),
                source: ImageSource::Rule(kind),
            })
            .unwrap_or_else(|| self.config_default())
    }

    /// The policy to answer with for a cached value: an invalid policy falls back to the last
    /// good one.
    fn effective(&self, key: &CacheKey, cached: &Cached) -> Option<Arc<ImagePolicy>> {
        match cached {
            Cached::Absent => None,
            Cached::Valid(policy) => Some(Arc::clone(policy)),
            Cached::Invalid(_) => self.last_good.get(key).cloned(),
        }
    }

    fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.warnings.do_send(ReportWarning {
            source: "policy".to_owned(),
            message,
        });
    }

    fn finish_fetch(&mut self, key: CacheKey, outcome: Result<Value, HubError>) {
        let waiters = self.inflight.remove(&key).unwrap_or_default();
        let answer_with: Option<Arc<ImagePolicy>> = match outcome {
            Ok(config) => {
                let extra = config
                    .get("extra")
                    .and_then(|extra| extra.get(POLICY_EXTRA_KEY))
                    .filter(|v| !v.is_null());
                let cached = match extra {
                    None => Cached::Absent,
                    Some(value) => match ImagePolicy::parse(value) {
                        Ok(policy) => {
                            let policy = Arc::new(policy);
                            self.last_good.insert(key.clone(), Arc::clone(&policy));
                            Cached::Valid(policy)
                        }
                        Err(error) => {
                            let now = Instant::now();
                            let due = self
                                .invalid_reported
                                .get(&key.0)
                                .is_none_or(|at| now.duration_since(*at) >= self.ttl);
                            if due {
                                self.invalid_reported.insert(key.0.clone(), now);
                                self.warn(format!(
                                    "tag {}: {error}; using {} until it is fixed",
                                    key.0,
                                    if self.last_good.contains_key(&key) {
                                        "the last valid policy"
                                    } else {
                                        "task_image_default"
                                    }
                                ));
                            }
                            Cached::Invalid(error)
                        }
                    },
                };
                let effective = self.effective(&key, &cached);
                self.entries.insert(
                    key.clone(),
                    CacheEntry {
                        value: cached,
                        fetched: Instant::now(),
                    },
                );
                effective
            }
            Err(error) => {
                self.hub_errors += 1;
                let fallback = self.last_good.get(&key).cloned();
                self.warn(format!(
                    "cannot read the image policy of tag {} from the hub ({error}); using {}",
                    key.0,
                    if fallback.is_some() {
                        "the last good policy"
                    } else {
                        "task_image_default"
                    }
                ));
                fallback
            }
        };
        for (request, reply) in waiters {
            let _ = reply.send(self.answer(answer_with.as_deref(), &request));
        }
    }
}

impl Actor for PolicyCache {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // Whoever waits gets the config default rather than a hang.
        for (_, waiters) in self.inflight.drain() {
            for (_, reply) in waiters {
                let _ = reply.send(ResolvedImage {
                    image: self.default_image.clone(),
                    source: ImageSource::ConfigDefault,
                });
            }
        }
        self.link.exited(std::mem::replace(
            &mut self.exit_reason,
            ExitReason::Stopped,
        ));
    }
}

impl Handler<ResolveImage> for PolicyCache {
    type Result = ResponseFuture<ResolvedImage>;

    fn handle(&mut self, request: ResolveImage, ctx: &mut Context<Self>) -> Self::Result {
        let Some(tag) = request.tag.clone().filter(|_| self.enabled) else {
            let answer = self.config_default();
            return Box::pin(async move { answer });
        };
        let key = (tag.clone(), request.event);
        if let Some(entry) = self.entries.get(&key)
            && entry.fetched.elapsed() < self.ttl
        {
            self.hits += 1;
            metrics::counter!("adjutant_policy_cache_total", "result" => "hit").increment(1);
            let policy = self.effective(&key, &entry.value);
            let answer = self.answer(policy.as_deref(), &request);
            return Box::pin(async move { answer });
        }
        self.misses += 1;
        metrics::counter!("adjutant_policy_cache_total", "result" => "miss").increment(1);
        let (reply, answer) = oneshot::channel();
        let fallback = self.config_default();
        let waiters = self.inflight.entry(key.clone()).or_default();
        let first = waiters.is_empty();
        waiters.push((request.clone(), reply));
        if first {
            let hub = Arc::clone(&self.hub);
            let event = request.event;
            AssertUnwindSafe(async move { hub.get_build_config(&tag, event).await })
                .catch_unwind()
                .into_actor(self)
                .map(move |outcome, act, ctx| match outcome {
                    Ok(result) => act.finish_fetch(key, result),
                    Err(panic) => {
                        act.exit_reason = ExitReason::Panicked(panic_message(&panic));
                        ctx.stop();
                    }
                })
                .spawn(ctx);
        }
        Box::pin(async move { answer.await.unwrap_or(fallback) })
    }
}

impl Handler<InvalidatePolicy> for PolicyCache {
    type Result = ();

    fn handle(&mut self, message: InvalidatePolicy, _ctx: &mut Context<Self>) {
        match message.tag {
            Some(tag) => {
                self.entries.retain(|(t, _), _| *t != tag);
                self.invalid_reported.remove(&tag);
            }
            None => {
                self.entries.clear();
                self.invalid_reported.clear();
            }
        }
    }
}

impl Handler<DumpPolicy> for PolicyCache {
    type Result = MessageResult<DumpPolicy>;

    fn handle(&mut self, _: DumpPolicy, _ctx: &mut Context<Self>) -> Self::Result {
        let mut entries: Vec<PolicyDumpEntry> = self
            .entries
            .iter()
            .map(|((tag, event), entry)| PolicyDumpEntry {
                tag: tag.clone(),
                event: *event,
                age_seconds: entry.fetched.elapsed().as_secs(),
                status: match &entry.value {
                    Cached::Absent => "no policy".to_owned(),
                    Cached::Valid(_) => "ok".to_owned(),
                    Cached::Invalid(error) => error.to_string(),
                },
                rules: match &entry.value {
                    Cached::Valid(policy) => policy.rules.clone(),
                    _ => Vec::new(),
                },
            })
            .collect();
        entries.sort_by(|a, b| (&a.tag, a.event).cmp(&(&b.tag, b.event)));
        MessageResult(PolicyDump {
            entries,
            hits: self.hits,
            misses: self.misses,
            hub_errors: self.hub_errors,
        })
    }
}

impl Handler<UpdatePolicySettings> for PolicyCache {
    type Result = ();

    fn handle(&mut self, message: UpdatePolicySettings, _ctx: &mut Context<Self>) {
        if message.default_image != self.default_image {
            // Cached answers are policies, not images, so only the fallback changes.
            self.default_image = message.default_image;
        }
        self.ttl = message.ttl;
        self.enabled = message.enabled;
    }
}

impl Handler<StopActor> for PolicyCache {
    type Result = ();

    fn handle(&mut self, _: StopActor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(rules: Value) -> ImagePolicy {
        ImagePolicy::parse(&json!({ "rules": rules })).unwrap()
    }

    #[test]
    fn specificity_beats_list_order() {
        // The earlier Python version scanned in list order and returned the task_type image here.
        let p = policy(json!([
            {"type": "default", "image": "d"},
            {"type": "task_type", "task_type": "buildArch", "image": "tt"},
            {"type": "tag", "tag": "f39-build", "image": "t"},
            {"type": "tag_arch", "tag": "f39-build", "arch": "x86_64", "image": "ta"},
        ]));
        assert_eq!(
            p.resolve("f39-build", "x86_64", "buildArch"),
            Some(("ta", RuleKind::TagArch))
        );
        assert_eq!(
            p.resolve("f39-build", "aarch64", "buildArch"),
            Some(("t", RuleKind::Tag))
        );
        assert_eq!(
            p.resolve("el10-build", "aarch64", "buildArch"),
            Some(("tt", RuleKind::TaskType))
        );
        assert_eq!(
            p.resolve("el10-build", "aarch64", "createrepo"),
            Some(("d", RuleKind::Default))
        );
    }

    #[test]
    fn first_listed_rule_of_a_kind_wins() {
        let p = policy(json!([
            {"type": "tag", "tag": "f*", "image": "first"},
            {"type": "tag", "tag": "f40-build", "image": "second"},
        ]));
        assert_eq!(
            p.resolve("f40-build", "x86_64", "buildArch").map(|r| r.0),
            Some("first")
        );
    }

    #[test]
    fn no_match_and_no_default_gives_none() {
        let p = policy(json!([{"type": "tag", "tag": "f40-build", "image": "x"}]));
        assert_eq!(p.resolve("el9-build", "x86_64", "buildArch"), None);
    }

    #[test]
    fn parses_json_strings_and_the_wrapped_form() {
        let text = json!({"adjutant_image_policy": {"version": "1.0", "rules": [{"type": "default", "image": "d"}]}}).to_string();
        let p = ImagePolicy::parse(&Value::String(text)).unwrap();
        assert_eq!(p.rules.len(), 1);
    }

    #[test]
    fn bad_policies_say_what_is_wrong() {
        let err = ImagePolicy::parse(&json!("{nope")).unwrap_err();
        assert!(matches!(err, PolicyError::Json(_)), "{err}");
        let err = ImagePolicy::parse(&json!({"rule": []})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "adjutant_image_policy must be a JSON object with a \"rules\" list, found an object with keys [rule]"
        );
        let err =
            ImagePolicy::parse(&json!({"rules": [{"type": "tag", "image": "x"}]})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "adjutant_image_policy rule 0 is invalid: missing string field \"tag\""
        );
        let err =
            ImagePolicy::parse(&json!({"rules": [{"type": "arch", "image": "x"}]})).unwrap_err();
        assert!(err.to_string().contains("unknown type \"arch\""), "{err}");
    }

    #[test]
    fn globs_follow_fnmatch() {
        assert!(glob_match("f4?-build", "f40-build"));
        assert!(!glob_match("f4?-build", "f400-build"));
        assert!(glob_match("*-build", "el10-build"));
        assert!(glob_match("x86_*", "x86_64"));
        assert!(glob_match("[ai]*", "aarch64"));
        assert!(glob_match("[!a]*", "x86_64"));
        assert!(!glob_match("[!a]*", "aarch64"));
        assert!(glob_match("ppc64[a-z]*", "ppc64le"));
        assert!(glob_match("[", "["));
        assert!(!glob_match("f40", "f40-build"));
        assert!(glob_match("", ""));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn rule() -> impl Strategy<Value = PolicyRule> {
        let tag = prop_oneof![Just("f40-build"), Just("f4?-build"), Just("el*"), Just("*")];
        let arch = prop_oneof![Just("x86_64"), Just("aarch64"), Just("*")];
        let task_type = prop_oneof![Just("buildArch"), Just("createrepo")];
        (0..4u8, tag, arch, task_type, 0..1000u32).prop_map(|(kind, tag, arch, task_type, n)| {
            let kind = [
                RuleKind::TagArch,
                RuleKind::Tag,
                RuleKind::TaskType,
                RuleKind::Default,
            ][usize::from(kind)];
            PolicyRule {
                kind,
                tag: matches!(kind, RuleKind::TagArch | RuleKind::Tag).then(|| tag.to_owned()),
                arch: (kind == RuleKind::TagArch).then(|| arch.to_owned()),
                task_type: (kind == RuleKind::TaskType).then(|| task_type.to_owned()),
                image: format!("img{n}"),
            }
        })
    }

    proptest! {
        /// Moving rules of different kinds around never changes the answer: only the order
        /// among rules of the same kind matters.
        #[test]
        fn precedence_ignores_order_across_kinds(
            rules in proptest::collection::vec(rule(), 0..8),
            choices in proptest::collection::vec(0..4usize, 8),
        ) {
            let policy = ImagePolicy { rules: rules.clone() };
            // Another interleaving of the same per-kind sequences.
            let mut queues: Vec<std::collections::VecDeque<PolicyRule>> = (0..4).map(|_| Default::default()).collect();
            for rule in rules {
                queues[rule.kind as usize].push_back(rule);
            }
            let mut interleaved = Vec::new();
            let mut choice = choices.iter().cycle();
            while queues.iter().any(|q| !q.is_empty()) {
                let start = choice.next().copied().unwrap_or(0);
                if let Some(queue) = (0..4).map(|i| (start + i) % 4).find(|&i| !queues[i].is_empty()) {
                    interleaved.extend(queues[queue].pop_front());
                }
            }
            let reordered = ImagePolicy { rules: interleaved };
            for (tag, arch, task_type) in [
                ("f40-build", "x86_64", "buildArch"),
                ("f41-build", "aarch64", "createrepo"),
                ("el10-build", "x86_64", "buildArch"),
            ] {
                prop_assert_eq!(
                    policy.resolve(tag, arch, task_type),
                    reordered.resolve(tag, arch, task_type)
                );
            }
        }
    }
}

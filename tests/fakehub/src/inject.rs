//! Fault injection: what the hub does instead of (or before) answering a request.

use std::time::Duration;

// tokio's clock, so that deadlines follow `tokio::time::pause()`/`advance()` in tests that
// run the client under a paused clock (and the wall clock otherwise).
use tokio::time::Instant;

/// What happens to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Answer with fault 1014 ServerOffline, as kojihub does when `ServerOffline` is set or the
    /// database is down.
    Offline { message: String },
    /// Answer with a bare HTTP status (500, 502, 503…) and a plain-text body, as Apache does
    /// when mod_wsgi fails.
    HttpStatus(u16),
    /// Close the connection without sending a response.
    DropConnection,
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Answer 200 with a body that is not valid XML.
    MalformedXml,
    /// Answer with this fault instead of calling the method.
    Fault { code: i32, message: String },
    /// Store a `rawUpload` chunk normally, then spoil one field of the reply, as if the
    /// bytes had been damaged on the way (§3.2: the client must compare `size` and
    /// `hexdigest` with what it sent). Requests other than `rawUpload` are answered normally,
    /// so scope this to the method (see [`Injection::corrupt_uploads`]).
    CorruptUpload(UploadCorruption),
}

/// Which field of a `rawUpload` reply [`Action::CorruptUpload`] spoils.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadCorruption {
    /// `hexdigest` gets every bit flipped, so it can never match the chunk's adler32.
    Digest,
    /// `size` claims one byte more than was received.
    Size,
}

/// Which requests an injection applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// The next N requests (any method).
    NextRequests(u32),
    /// The next N calls of this method (`rawUpload` for upload POSTs).
    Method {
        name: String,
        remaining: Option<u32>,
    },
    /// Every request until the deadline.
    Until(Instant),
    /// Calls of this method until the deadline.
    MethodUntil { name: String, deadline: Instant },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    pub scope: Scope,
    pub action: Action,
}

impl Injection {
    pub fn next(count: u32, action: Action) -> Self {
        Self {
            scope: Scope::NextRequests(count),
            action,
        }
    }
    pub fn method(name: impl Into<String>, count: Option<u32>, action: Action) -> Self {
        Self {
            scope: Scope::Method {
                name: name.into(),
                remaining: count,
            },
            action,
        }
    }
    pub fn for_duration(duration: Duration, action: Action) -> Self {
        Self {
            scope: Scope::Until(Instant::now() + duration),
            action,
        }
    }
    /// Spoil the replies of the next `count` `rawUpload` calls (the chunks are still stored).
    pub fn corrupt_uploads(count: u32, what: UploadCorruption) -> Self {
        Self::method("rawUpload", Some(count), Action::CorruptUpload(what))
    }
    /// ServerOffline (1014) for every request during `duration`.
    pub fn offline_for(duration: Duration) -> Self {
        Self::for_duration(
            duration,
            Action::Offline {
                message: "server is offline".to_owned(),
            },
        )
    }
}

#[derive(Debug, Default)]
pub struct Injections {
    rules: Vec<Injection>,
}

impl Injections {
    pub fn add(&mut self, injection: Injection) {
        self.rules.push(injection);
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn pending(&self) -> usize {
        self.rules.len()
    }

    /// The action for a request to `method`, consuming one use of a counted rule. The first
    /// matching rule wins; rules that are used up or past their deadline are dropped.
    pub fn take(&mut self, method: &str) -> Option<Action> {
        let now = Instant::now();
        self.rules.retain(|rule| match &rule.scope {
            Scope::NextRequests(n) => *n > 0,
            Scope::Method { remaining, .. } => remaining.is_none_or(|n| n > 0),
            Scope::Until(deadline) | Scope::MethodUntil { deadline, .. } => *deadline > now,
        });
        let rule = self.rules.iter_mut().find(|rule| match &rule.scope {
            Scope::NextRequests(_) | Scope::Until(_) => true,
            Scope::Method { name, .. } | Scope::MethodUntil { name, .. } => name == method,
        })?;
        match &mut rule.scope {
            Scope::NextRequests(n) => *n -= 1,
            Scope::Method {
                remaining: Some(n), ..
            } => *n -= 1,
            _ => {}
        }
        Some(rule.action.clone())
    }
}

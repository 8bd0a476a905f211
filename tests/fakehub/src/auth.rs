//! Sessions, as `kojihub/auth.py` keeps them: lookup and validation of every request, logins,
//! renewal, exclusive sessions, subsessions and logout.

use std::cell::Cell;

use dxr::Value;

use crate::args::BoundArgs;
use crate::config::CallnumCheck;
use crate::faults::HubFault;
use crate::state::{HubState, Session};
use crate::xmlrpc::{vint, vopt_f64, vopt_int, vstr, vstruct};

/// `AUTHTYPES`.
pub const AUTHTYPE_NORMAL: i64 = 0;
pub const AUTHTYPE_SSL: i64 = 2;

/// Calls that may be replayed with the same callnum (`RetryWhitelist`).
pub const RETRY_WHITELIST: &[&str] = &[
    "host.taskWait",
    "host.taskUnwait",
    "host.taskSetWait",
    "host.updateHost",
    "host.setBuildRootState",
    "repoExpire",
    "repoDelete",
    "repoProblem",
];

const AUTH_METHODS: &[&str] = &["login", "sslLogin"];

/// What the transport knows about a request, for session lookup and `sslLogin`.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// CN of a verified TLS client certificate.
    pub peer_cn: Option<String>,
}

impl RequestMeta {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The session a request runs under (`context.session`).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub session_id: Option<i64>,
    pub logged_in: bool,
    pub user_id: Option<i64>,
    pub exclusive: bool,
    pub master: Option<i64>,
    pub lockerror: Option<String>,
    pub callnum: Option<i64>,
    /// The session row as read at the start of the request (`session_data`).
    pub snapshot: Option<Session>,
}

thread_local! {
    static KEY_SEED: Cell<u64> = const { Cell::new(0) };
}

fn random_alnum(len: usize) -> String {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    KEY_SEED.with(|seed| {
        let mut x = seed.get();
        if x == 0 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9, |d| d.as_nanos());
            #[allow(clippy::cast_possible_truncation)]
            let mixed = (nanos as u64) ^ 0x2545_f491_4f6c_dd1d;
            x = mixed | 1;
        }
        let mut out = String::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            #[allow(clippy::cast_possible_truncation)]
            let index = (x % ALNUM.len() as u64) as usize;
            out.push(char::from(ALNUM.get(index).copied().unwrap_or(b'x')));
        }
        seed.set(x);
        out
    })
}

fn parse_int_text(text: &str, what: &str) -> Result<i64, HubFault> {
    text.trim().parse::<i64>().map_err(|_| {
        HubFault::plain(format!(
            "<class 'ValueError'>: invalid literal for int() with base 10: '{text}' ({what})"
        ))
    })
}

impl HubState {
    /// `Session.__init__`: identify and validate the session of a request.
    pub fn load_session(&mut self, meta: &RequestMeta, method: &str) -> Result<Caller, HubFault> {
        let mut caller = Caller::default();
        let (id, key, callnum_text) = if let Some(id_text) = meta.header("Koji-Session-Id") {
            let id = parse_int_text(id_text, "Koji-Session-Id")?;
            let key = meta
                .header("Koji-Session-Key")
                .ok_or_else(|| HubFault::plain("<class 'KeyError'>: 'HTTP_KOJI_SESSION_KEY'"))?
                .to_owned();
            let callnum = match self.config.callnum_check {
                CallnumCheck::Enforced => meta
                    .header("Koji-Session-Callnum")
                    .or_else(|| meta.header("Koji-Callnum")),
                CallnumCheck::AsVersion if self.config.version.reads_session_callnum_header() => {
                    meta.header("Koji-Session-Callnum")
                }
                CallnumCheck::AsVersion => meta.header("Koji-Callnum"),
            };
            (id, key, callnum.map(str::to_owned))
        } else {
            let session_query: Vec<&(String, String)> = meta
                .query
                .iter()
                .filter(|(n, _)| matches!(n.as_str(), "session-id" | "session-key" | "callnum"))
                .collect();
            if meta.query.is_empty() {
                return Ok(caller);
            }
            let id_text = session_query
                .iter()
                .find(|(n, _)| n == "session-id")
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| HubFault::auth("'session-id' not specified in session args"))?;
            let key = session_query
                .iter()
                .find(|(n, _)| n == "session-key")
                .map(|(_, v)| v.clone())
                .ok_or_else(|| HubFault::auth("'session-key' not specified in session args"))?;
            let callnum = session_query
                .iter()
                .find(|(n, _)| n == "callnum")
                .map(|(_, v)| v.clone());
            (parse_int_text(id_text, "session-id")?, key, callnum)
        };
        caller.session_id = Some(id);

        let now = self.now();
        let timeout = if self.config.version.at_least(1, 33) {
            self.config.session_renewal_timeout
        } else {
            None
        };
        let session = self
            .sessions
            .get(&id)
            .filter(|s| s.key == key && !s.closed)
            .cloned()
            .ok_or_else(|| HubFault::auth("Invalid session or bad credentials"))?;
        let mut expired = session.expired;
        if !expired && let Some(timeout) = timeout {
            let cutoff = session.renew_ts.unwrap_or(session.start_ts) + timeout.as_secs_f64();
            if now > cutoff {
                expired = true;
                self.expire_session_tree(id);
            }
        }
        if expired && !AUTH_METHODS.contains(&method) {
            return Err(HubFault::expired(format!("session \"{id}\" has expired")));
        }
        let callnum = match callnum_text {
            Some(text) => {
                let callnum = text
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| HubFault::auth(format!("Invalid callnum: '{text}'")))?;
                if let Some(last) = session.callnum {
                    if last > callnum {
                        return Err(HubFault::sequence(format!(
                            "{last} > {callnum} (session {id})"
                        )));
                    }
                    if last == callnum && !RETRY_WHITELIST.contains(&method) {
                        return Err(HubFault::retry(format!(
                            "unable to retry call {callnum} (method {method}) for session {id}"
                        )));
                    }
                }
                Some(callnum)
            }
            None => None,
        };
        if expired {
            // Only login/sslLogin get here: the renewal path, not logged in. Like kojihub,
            // nothing else of the session is loaded, not even `master` or `exclusive`.
            caller.snapshot = Some(session);
            return Ok(caller);
        }
        caller.master = session.master;
        let user = self
            .users
            .get(&session.user_id)
            .cloned()
            .ok_or_else(|| HubFault::auth(format!("invalid user_id: {}", session.user_id)))?;
        if user.blocked {
            return Err(HubFault::auth(format!(
                "logins by {} are not allowed",
                user.name
            )));
        }
        if session.exclusive {
            caller.exclusive = true;
        } else if let Some(excl_id) = self
            .sessions
            .values()
            .find(|s| s.user_id == session.user_id && s.exclusive && !s.closed)
            .map(|s| s.id)
        {
            if Some(excl_id) == session.master {
                caller.exclusive = true;
            } else {
                caller.lockerror = Some("User locked by another session".to_owned());
            }
        }
        if let Some(row) = self.sessions.get_mut(&id) {
            row.update_ts = now;
        }
        caller.callnum = callnum;
        caller.user_id = Some(session.user_id);
        caller.logged_in = true;
        caller.snapshot = Some(session);
        Ok(caller)
    }

    /// Remember the callnum of a call that changed data (kojihub commits it only then).
    pub fn commit_callnum(&mut self, caller: &Caller) {
        if let (Some(id), Some(callnum)) = (caller.session_id, caller.callnum)
            && let Some(session) = self.sessions.get_mut(&id)
        {
            session.callnum = Some(callnum);
        }
    }

    pub fn expire_session_tree(&mut self, id: i64) {
        for session in self.sessions.values_mut() {
            if session.id == id || session.master == Some(id) {
                session.expired = true;
            }
        }
    }

    fn close_session_tree(&mut self, id: i64) {
        for session in self.sessions.values_mut() {
            if session.id == id || session.master == Some(id) {
                session.expired = true;
                session.exclusive = false;
                session.closed = true;
            }
        }
    }

    /// `createSession`: a new session, or a new key for the caller's session when renewing.
    fn create_session(
        &mut self,
        caller: &mut Caller,
        user_id: i64,
        authtype: i64,
        master: Option<i64>,
        renew: bool,
    ) -> Result<Value, HubFault> {
        let key = format!("{user_id}-{}", random_alnum(19));
        let now = self.now();
        let session_id = if let (true, Some(id)) = (renew, caller.session_id) {
            if let Some(master_id) = caller.master {
                let master_alive = self.sessions.get(&master_id).is_some_and(|m| !m.closed);
                if !master_alive {
                    return Ok(Value::Nil);
                }
            }
            let row = self
                .sessions
                .get_mut(&id)
                .ok_or_else(|| HubFault::auth("Invalid session or bad credentials"))?;
            row.key.clone_from(&key);
            row.expired = false;
            row.renew_ts = Some(now);
            row.update_ts = now;
            id
        } else {
            let id = self.next_session_id;
            self.next_session_id += 1;
            self.sessions.insert(
                id,
                Session {
                    id,
                    key: key.clone(),
                    user_id,
                    authtype,
                    master,
                    exclusive: false,
                    expired: false,
                    closed: false,
                    callnum: None,
                    start_ts: now,
                    update_ts: now,
                    renew_ts: None,
                },
            );
            id
        };
        caller.session_id = Some(session_id);
        caller.user_id = Some(user_id);
        caller.master = master.or(caller.master);
        let mut members = std::collections::BTreeMap::new();
        members.insert("session-id".to_owned(), vint(session_id));
        members.insert("session-key".to_owned(), vstr(key));
        // header-auth exists since 1.31; every version we imitate has it.
        members.insert("header-auth".to_owned(), Value::Boolean(true));
        Ok(Value::Struct(members))
    }

    fn check_login_allowed(&self, user_id: i64) -> Result<(), HubFault> {
        let user = self
            .users
            .get(&user_id)
            .ok_or_else(|| HubFault::auth(format!("invalid user_id: {user_id}")))?;
        if user.blocked {
            return Err(HubFault::auth(format!(
                "logins by {} are not allowed",
                user.name
            )));
        }
        Ok(())
    }

    pub fn login(&mut self, caller: &mut Caller, args: &BoundArgs) -> Result<Value, HubFault> {
        let user = args.opt_string("user")?.unwrap_or_default();
        let password = match args.get("password") {
            Some(Value::String(p)) if !p.is_empty() => p.clone(),
            _ => return Err(HubFault::auth("invalid username or password")),
        };
        if caller.logged_in {
            return Err(HubFault::auth("Already logged in"));
        }
        let user_id = self
            .users
            .values()
            .find(|u| u.name == user && u.password.as_deref() == Some(password.as_str()))
            .map(|u| u.id)
            .ok_or_else(|| HubFault::auth("invalid username or password"))?;
        self.check_login_allowed(user_id)?;
        let renew = args.flag("renew", false);
        let sinfo = self.create_session(caller, user_id, AUTHTYPE_NORMAL, None, renew)?;
        self.exclusive_after_login(caller, &sinfo, renew, args.flag("exclusive", false))?;
        Ok(sinfo)
    }

    pub fn ssl_login(
        &mut self,
        caller: &mut Caller,
        meta: &RequestMeta,
        args: &BoundArgs,
    ) -> Result<Value, HubFault> {
        if caller.logged_in {
            return Err(HubFault::auth("Already logged in"));
        }
        // Apache sets SSL_CLIENT_VERIFY only where it asks for the certificate: /ssllogin.
        let on_ssl_path = meta.path.trim_end_matches('/').ends_with("/ssllogin");
        let username = match (&meta.peer_cn, &self.config.ssl_login_user) {
            _ if !on_ssl_path => None,
            (Some(cn), _) => Some(cn.clone()),
            (None, Some(user)) => Some(user.clone()),
            (None, None) => None,
        };
        let Some(username) = username else {
            return Err(HubFault::auth("could not verify client: None"));
        };
        if args.get("proxyuser").is_some() {
            return Err(HubFault::auth(format!(
                "CN={username} is not authorized to login other users"
            )));
        }
        let user_id = self
            .user_by_name(&username)
            .map(|u| u.id)
            .ok_or_else(|| HubFault::auth(format!("Unknown user: {username}")))?;
        self.check_login_allowed(user_id)?;
        let renew = args.flag("renew", false);
        let sinfo = self.create_session(caller, user_id, AUTHTYPE_SSL, None, renew)?;
        self.exclusive_after_login(caller, &sinfo, renew, args.flag("exclusive", false))?;
        Ok(sinfo)
    }

    /// `if sinfo and exclusive and not self.exclusive: self.makeExclusive()`.
    fn exclusive_after_login(
        &mut self,
        caller: &mut Caller,
        sinfo: &Value,
        renew: bool,
        exclusive: bool,
    ) -> Result<(), HubFault> {
        if matches!(sinfo, Value::Nil) || !exclusive || caller.exclusive {
            return Ok(());
        }
        let holds_lock = caller
            .session_id
            .and_then(|id| self.sessions.get(&id))
            .is_some_and(|s| s.exclusive);
        if renew && holds_lock && !self.config.renew_exclusive_conflicts {
            caller.exclusive = true;
            return Ok(());
        }
        self.make_exclusive(caller, false)
    }

    pub fn make_exclusive(&mut self, caller: &mut Caller, force: bool) -> Result<(), HubFault> {
        let (Some(session_id), Some(user_id)) = (caller.session_id, caller.user_id) else {
            return Err(HubFault::auth("Not logged in"));
        };
        if caller.master.is_some() {
            return Err(HubFault::generic("subsessions cannot become exclusive"));
        }
        if caller.exclusive {
            return Err(HubFault::generic("session is already exclusive"));
        }
        let holder = self
            .sessions
            .values()
            .find(|s| s.user_id == user_id && !s.closed && s.exclusive)
            .map(|s| s.id);
        if let Some(holder) = holder {
            if !force {
                return Err(HubFault::auth_lock("Cannot get exclusive session"));
            }
            if let Some(other) = self.sessions.get_mut(&holder) {
                other.expired = true;
                other.exclusive = false;
                other.closed = true;
            }
        }
        if let Some(row) = self.sessions.get_mut(&session_id) {
            row.exclusive = true;
        }
        caller.exclusive = true;
        caller.lockerror = None;
        Ok(())
    }

    pub fn shared_session(&mut self, caller: &mut Caller) -> Result<Value, HubFault> {
        let id = caller
            .session_id
            .ok_or_else(|| HubFault::auth("Not logged in"))?;
        if let Some(row) = self.sessions.get_mut(&id) {
            row.exclusive = false;
        }
        caller.exclusive = false;
        Ok(Value::Nil)
    }

    pub fn logout(&mut self, caller: &mut Caller, args: &BoundArgs) -> Result<Value, HubFault> {
        if !caller.logged_in {
            return Err(HubFault::auth("Not logged in"));
        }
        let target = match args.opt_int("session_id")? {
            Some(other) if other != 0 => {
                let is_admin = caller
                    .user_id
                    .and_then(|u| self.users.get(&u))
                    .is_some_and(|u| u.admin);
                let owns = self
                    .sessions
                    .get(&other)
                    .is_some_and(|s| Some(s.user_id) == caller.user_id);
                if !is_admin && !owns {
                    return Err(HubFault::not_allowed(
                        "only admins or owner may logout other session",
                    ));
                }
                other
            }
            _ => caller
                .session_id
                .ok_or_else(|| HubFault::auth("Not logged in"))?,
        };
        self.close_session_tree(target);
        if Some(target) == caller.session_id {
            caller.logged_in = false;
        }
        Ok(Value::Nil)
    }

    pub fn logout_child(&mut self, caller: &Caller, args: &BoundArgs) -> Result<Value, HubFault> {
        if !caller.logged_in {
            return Err(HubFault::auth("Not logged in"));
        }
        let child = args.int("session_id")?;
        if let Some(session) = self.sessions.get_mut(&child)
            && session.master == caller.session_id
        {
            session.expired = true;
            session.exclusive = false;
            session.closed = true;
        }
        Ok(Value::Nil)
    }

    pub fn subsession(&mut self, caller: &Caller) -> Result<Value, HubFault> {
        if !caller.logged_in {
            return Err(HubFault::auth("Not logged in"));
        }
        let master = caller.master.or(caller.session_id);
        let user_id = caller
            .user_id
            .ok_or_else(|| HubFault::auth("Not logged in"))?;
        let authtype = caller
            .snapshot
            .as_ref()
            .map_or(AUTHTYPE_NORMAL, |s| s.authtype);
        // A subsession is a new session: do not let create_session touch the caller's ids.
        let mut scratch = Caller::default();
        self.create_session(&mut scratch, user_id, authtype, master, false)
    }

    pub fn get_session_info(&self, caller: &Caller, args: &BoundArgs) -> Value {
        let (true, Some(session)) = (caller.logged_in, caller.snapshot.as_ref()) else {
            return Value::Nil;
        };
        let ts_str = |ts: f64| Value::String(crate::state::format_ts(ts));
        let mut info = std::collections::BTreeMap::new();
        info.insert("authtype".into(), vint(session.authtype));
        info.insert("callnum".into(), vopt_int(session.callnum));
        // The column is TRUE or NULL, never FALSE.
        info.insert(
            "exclusive".into(),
            if session.exclusive {
                Value::Boolean(true)
            } else {
                Value::Nil
            },
        );
        info.insert("expired".into(), Value::Boolean(session.expired));
        info.insert("master".into(), vopt_int(session.master));
        info.insert(
            "renew_time".into(),
            session.renew_ts.map_or(Value::Nil, ts_str),
        );
        info.insert("renew_ts".into(), vopt_f64(session.renew_ts));
        info.insert("start_time".into(), ts_str(session.start_ts));
        info.insert("start_ts".into(), Value::Double(session.start_ts));
        info.insert("update_time".into(), ts_str(session.update_ts));
        info.insert("update_ts".into(), Value::Double(session.update_ts));
        info.insert("user_id".into(), vint(session.user_id));
        if args.flag("details", false) {
            info.insert("id".into(), vint(session.id));
            info.insert("hostip".into(), vstr("127.0.0.1"));
        }
        Value::Struct(info)
    }

    pub fn get_logged_in_user(&self, caller: &Caller) -> Value {
        let Some(user) = caller
            .user_id
            .filter(|_| caller.logged_in)
            .and_then(|id| self.users.get(&id))
        else {
            return Value::Nil;
        };
        vstruct([
            (
                "authtype",
                vint(caller.snapshot.as_ref().map_or(0, |s| s.authtype)),
            ),
            ("id", vint(user.id)),
            ("krb_principals", Value::Array(Vec::new())),
            ("name", vstr(&user.name)),
            ("status", vint(i64::from(user.blocked))),
            ("usertype", vint(i64::from(user.host))),
        ])
    }

    /// `assertLogin`.
    pub fn assert_login(caller: &Caller) -> Result<i64, HubFault> {
        match (caller.logged_in, caller.user_id) {
            (true, Some(user_id)) => Ok(user_id),
            _ => Err(HubFault::not_allowed(
                "you must be logged in for this operation",
            )),
        }
    }

    /// `Host().verify()`: the caller is a host user holding the exclusive session.
    pub fn verify_host(&self, caller: &Caller) -> Result<i64, HubFault> {
        let user_id = match (caller.logged_in, caller.user_id) {
            (true, Some(user_id)) => user_id,
            _ => return Err(HubFault::auth("Not logged-in")),
        };
        let host = self
            .host_by_user(user_id)
            .ok_or_else(|| HubFault::auth(format!("User {user_id} is not a host")))?;
        if !caller.exclusive {
            return Err(HubFault::auth("This method requires an exclusive session"));
        }
        Ok(host.id)
    }

    pub fn is_admin(&self, caller: &Caller) -> bool {
        caller.logged_in
            && caller
                .user_id
                .and_then(|u| self.users.get(&u))
                .is_some_and(|u| u.admin)
    }
}

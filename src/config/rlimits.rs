//! Applies `RLIMIT_*` settings to this process at start-up, as kojid's `setup_rlimits` does.
//! A single value sets the soft limit and keeps the current hard limit.

use super::RlimitSetting;

#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error("{name} is not a resource limit this system knows; remove it from [kojid]")]
    UnknownResource { name: String },
    #[error("cannot read the current {name}: {source}")]
    Read {
        name: String,
        source: std::io::Error,
    },
    #[error(
        "cannot set {name} to soft={soft} hard={hard}: {source}; raising a hard limit needs root (CAP_SYS_RESOURCE)"
    )]
    Set {
        name: String,
        soft: u64,
        hard: u64,
        source: std::io::Error,
    },
}

fn resource_of(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

/// The limits of `name` now, as (soft, hard).
pub fn current(name: &str) -> Result<(u64, u64), RlimitError> {
    let resource = resource_of(name).ok_or_else(|| RlimitError::UnknownResource {
        name: name.to_string(),
    })?;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct through a valid pointer.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
        return Err(RlimitError::Read {
            name: name.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// Sets one limit; returns the (soft, hard) pair that was set.
pub fn apply(setting: &RlimitSetting) -> Result<(u64, u64), RlimitError> {
    let name = setting.name.as_str();
    let resource = resource_of(name).ok_or_else(|| RlimitError::UnknownResource {
        name: name.to_string(),
    })?;
    let hard = match setting.limit.hard {
        Some(hard) => hard,
        None => current(name)?.1,
    };
    let soft = setting.limit.soft;
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit struct through a valid pointer.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(RlimitError::Set {
            name: name.to_string(),
            soft,
            hard,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok((soft, hard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Rlimit, Source};

    #[test]
    fn a_single_value_sets_soft_and_keeps_hard() {
        let (_, hard_before) = current("RLIMIT_CORE").unwrap();
        let setting = RlimitSetting {
            name: "RLIMIT_CORE".to_string(),
            limit: Rlimit {
                soft: 0,
                hard: None,
            },
            raw: "0".to_string(),
            source: Source::Default,
        };
        assert_eq!(apply(&setting).unwrap(), (0, hard_before));
        assert_eq!(current("RLIMIT_CORE").unwrap(), (0, hard_before));
    }

    #[test]
    fn a_soft_limit_above_hard_is_refused_with_a_reason() {
        let (_, hard) = current("RLIMIT_NOFILE").unwrap();
        let setting = RlimitSetting {
            name: "RLIMIT_NOFILE".to_string(),
            limit: Rlimit {
                soft: hard.saturating_add(1),
                hard: Some(hard),
            },
            raw: String::new(),
            source: Source::Default,
        };
        assert!(matches!(apply(&setting), Err(RlimitError::Set { .. })));
    }
}

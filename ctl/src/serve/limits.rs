//! The open-files limit: every proxy holds a connection, so a fleet of a
//! thousand needs more than the soft `RLIMIT_NOFILE` of 1,024 that most
//! systems (systemd's default, a login shell's `ulimit -n`) give a process.
//! Past it, accept(2) fails with EMFILE: the proxies beyond it are never
//! answered and hyper retries the accept in a loop (measured with the
//! fleet benchmark: 247 of 300 proxies served under a limit of 256, the
//! server at 22 % of a core meanwhile). The soft limit is raised to the
//! hard one at start, as Go's runtime does for every Go server since 1.19:
//! the server uses epoll, never select(2), so a large limit costs nothing.

use rustix::process::{getrlimit, setrlimit, Resource};

/// Raises the soft limit to the hard one; the limit now in force and the
/// one before, for the log (`None`: unlimited).
pub fn raise_open_files() -> (Option<u64>, Option<u64>) {
    let mut limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if setrlimit(Resource::Nofile, limit).is_err() {
            return (before, before);
        }
    }
    (limit.current, before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_becomes_the_hard_one() {
        // Lowered a little first (other tests of this process keep room),
        // so that the raise has something to do.
        let mut lowered = getrlimit(Resource::Nofile);
        lowered.current = Some(lowered.maximum.map_or(65_536, |max| max - 1));
        setrlimit(Resource::Nofile, lowered).unwrap();
        let (now, before) = raise_open_files();
        assert_eq!(before, lowered.current);
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(now, limit.current);
        assert_eq!(limit.current, limit.maximum);
    }
}

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::AuthError;

/// Throttles failed logins per key (a username, a client address): after `max_failures` within
/// `window`, further attempts are refused until the oldest failure leaves the window. A success
/// clears the key. Both the user and the address are checked, so spraying one password over many
/// users from one address is throttled as well as guessing one user's password from many addresses.
pub struct LoginLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginLimiter {
    pub fn new(max_failures: usize, window: Duration) -> LoginLimiter {
        LoginLimiter { max_failures: max_failures.max(1), window, failures: Mutex::new(HashMap::new()) }
    }

    /// Refuses when any key is over its budget.
    pub fn check(&self, keys: &[&str], now: Instant) -> Result<(), AuthError> {
        let mut map = self.failures.lock().expect("limiter lock");
        for k in keys {
            if let Some(list) = map.get_mut(*k) {
                list.retain(|t| now.duration_since(*t) < self.window);
                if list.len() >= self.max_failures {
                    let oldest = list[0];
                    let wait = self.window.saturating_sub(now.duration_since(oldest));
                    return Err(AuthError::Throttled { retry_after_secs: wait.as_secs().max(1) });
                }
            }
        }
        Ok(())
    }

    pub fn failed(&self, keys: &[&str], now: Instant) {
        let mut map = self.failures.lock().expect("limiter lock");
        for k in keys {
            map.entry((*k).to_string()).or_default().push(now);
        }
        // Bound memory: forget keys whose failures have all aged out.
        if map.len() > 10_000 {
            map.retain(|_, l| l.iter().any(|t| now.duration_since(*t) < self.window));
        }
    }

    pub fn succeeded(&self, keys: &[&str]) {
        let mut map = self.failures.lock().expect("limiter lock");
        for k in keys {
            map.remove(*k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_after_failures_and_recovers() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(l.check(&["user:a", "ip:1"], t0).is_ok(), "attempt {i}");
            l.failed(&["user:a", "ip:1"], t0);
        }
        assert!(
            matches!(l.check(&["user:a", "ip:2"], t0), Err(AuthError::Throttled { .. })),
            "the user is throttled from any address"
        );
        assert!(
            matches!(l.check(&["user:b", "ip:1"], t0), Err(AuthError::Throttled { .. })),
            "the address is throttled for any user"
        );
        assert!(l.check(&["user:b", "ip:2"], t0).is_ok());
        assert!(l.check(&["user:a", "ip:1"], t0 + Duration::from_secs(61)).is_ok(), "failures age out");
        l.failed(&["user:c"], t0);
        l.succeeded(&["user:c"]);
        assert!(l.failures.lock().unwrap().get("user:c").is_none());
    }
}

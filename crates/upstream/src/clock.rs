//! Time as the balancers and health logic see it.
//!
//! Ejection deadlines use a monotonic clock so that a wall-clock step (NTP, VM resume) cannot eject or
//! re-admit every upstream at once; warm-up uses wall-clock time because the instant an upstream came up
//! arrives in config as unix milliseconds. Both are passed around as one [`Now`] so tests can pin them.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

static BASE: OnceLock<Instant> = OnceLock::new();

/// Milliseconds on the process's monotonic clock. Starts at 1 so that 0 can mean "never" in atomics.
pub fn mono_ms() -> u64 {
    let base = *BASE.get_or_init(Instant::now);
    base.elapsed().as_millis() as u64 + 1
}

/// Milliseconds since the unix epoch (0 if the system clock is before 1970).
pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// One reading of both clocks, taken once per pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// See [`mono_ms`].
    pub mono_ms: u64,
    /// See [`unix_ms`].
    pub unix_ms: i64,
}

impl Now {
    pub fn current() -> Now {
        Now { mono_ms: mono_ms(), unix_ms: unix_ms() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_never_zero_and_monotonic() {
        let a = mono_ms();
        let b = mono_ms();
        assert!(a >= 1);
        assert!(b >= a);
    }

    #[test]
    fn unix_is_after_2020() {
        assert!(unix_ms() > 1_577_836_800_000);
    }
}

//! `exactly_once`: what follows an aborted transaction. An abort restores every shard and
//! rewinds the inputs, so a failure that repeats (a record the alerts topic refuses, an ACL
//! missing) would abort, restore and seek back forever. Each abort waits longer than the one
//! before (exponential, bounded); after `service.max_identical_aborts` consecutive aborts for
//! the same cause, with no commit between them, the service gives up and exits non-zero
//! naming the cause (the orchestrator restarts it, and its restarts are visible).
//!
//! Pure: the caller sleeps and counts; this decides.

use std::time::Duration;

/// The first wait after an abort.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two aborts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What to do after an abort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterAbort {
    /// Wait this long, then restore and redo the batch.
    Retry {
        /// The wait.
        backoff: Duration,
        /// Consecutive aborts for this cause so far (1 for the first).
        consecutive: u32,
    },
    /// The same cause ended this many transactions in a row: stop.
    GiveUp {
        /// Consecutive aborts for the cause.
        consecutive: u32,
    },
}

/// Counts consecutive aborts for the same cause; a commit or another cause starts over.
#[derive(Debug, Clone)]
pub struct AbortLoop {
    max_identical: u32,
    cause: Option<String>,
    consecutive: u32,
}

impl AbortLoop {
    /// Gives up at the `max_identical`-th consecutive abort for one cause (at least 1).
    pub fn new(max_identical: u32) -> Self {
        AbortLoop {
            max_identical: max_identical.max(1),
            cause: None,
            consecutive: 0,
        }
    }

    /// A transaction was aborted because of `cause` (a stable description of the error: the
    /// same failure gives the same text).
    pub fn aborted(&mut self, cause: &str) -> AfterAbort {
        if self.cause.as_deref() == Some(cause) {
            self.consecutive = self.consecutive.saturating_add(1);
        } else {
            self.cause = Some(cause.to_owned());
            self.consecutive = 1;
        }
        if self.consecutive >= self.max_identical {
            return AfterAbort::GiveUp {
                consecutive: self.consecutive,
            };
        }
        AfterAbort::Retry {
            backoff: backoff(self.consecutive),
            consecutive: self.consecutive,
        }
    }

    /// A transaction committed: the loop, if any, is broken.
    pub fn committed(&mut self) {
        self.cause = None;
        self.consecutive = 0;
    }
}

/// The wait before redoing the batch after the `n`-th consecutive abort (n ≥ 1):
/// [`BACKOFF_FIRST`] doubled each time, at most [`BACKOFF_MAX`].
pub fn backoff(n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(20);
    BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100_ms_and_stops_at_30_s() {
        let ms: Vec<u128> = (1..=12).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(
            ms,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000]
        );
        assert_eq!(backoff(0), BACKOFF_FIRST);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn the_same_cause_n_times_in_a_row_gives_up() {
        let mut l = AbortLoop::new(3);
        let cause = "1 record(s) not delivered; first error: Broker: Message size too large";
        assert_eq!(
            l.aborted(cause),
            AfterAbort::Retry {
                backoff: Duration::from_millis(100),
                consecutive: 1
            }
        );
        assert_eq!(
            l.aborted(cause),
            AfterAbort::Retry {
                backoff: Duration::from_millis(200),
                consecutive: 2
            }
        );
        assert_eq!(l.aborted(cause), AfterAbort::GiveUp { consecutive: 3 });
    }

    #[test]
    fn a_commit_or_another_cause_starts_over() {
        let mut l = AbortLoop::new(2);
        assert!(matches!(l.aborted("a"), AfterAbort::Retry { .. }));
        l.committed();
        assert!(matches!(
            l.aborted("a"),
            AfterAbort::Retry { consecutive: 1, .. }
        ));
        // Another cause: a fresh count, and the first wait again.
        assert_eq!(
            l.aborted("b"),
            AfterAbort::Retry {
                backoff: BACKOFF_FIRST,
                consecutive: 1
            }
        );
        assert_eq!(l.aborted("b"), AfterAbort::GiveUp { consecutive: 2 });
    }

    #[test]
    fn a_limit_of_one_gives_up_at_once_and_zero_means_one() {
        assert_eq!(
            AbortLoop::new(1).aborted("x"),
            AfterAbort::GiveUp { consecutive: 1 }
        );
        assert_eq!(
            AbortLoop::new(0).aborted("x"),
            AfterAbort::GiveUp { consecutive: 1 }
        );
    }
}

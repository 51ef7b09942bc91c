//! Crash points for the fault-injection tests: named places where a test can make the process
//! die as SIGKILL would (`std::process::abort`: no destructor, no flush, no commit), to check
//! what a restart recovers.
//!
//! Compiled in only with the `failpoints` feature (the `fail` crate), which is off in every
//! build a user runs and on under `cargo test` (the dev-dependency on this crate turns it on).
//! Without it [`crash_point!`] expands to nothing. With it, the binary reads the `FAILPOINTS`
//! environment variable at start (`fail::FailScenario::setup`): `NAME=return` crashes at the
//! first pass through `NAME`, `NAME=3*off->return` at the fourth; several are separated by `;`.

/// `at_least_once`: every record of the commit point is acknowledged (changelog included), the
/// input offsets are about to be committed. `exactly_once`: the transaction's records are
/// flushed and acknowledged, its offsets not yet sent (`send_offsets_to_transaction`).
pub const BEFORE_OFFSETS_COMMIT: &str = "before_offsets_commit";
/// `exactly_once`: the offsets were sent to the transaction, `commit_transaction` not called.
pub const BETWEEN_SEND_OFFSETS_AND_COMMIT: &str = "between_send_offsets_and_commit";
/// A restore has found its restore point (first pass over the changelog partition, its marker
/// written) and not yet read the keys (second pass).
pub const RESTORE_BETWEEN_PASSES: &str = "restore_between_passes";
/// A batch's rejects of one input partition: at least one dead letter sent, the next not yet.
pub const DEAD_LETTER_BATCH_MIDDLE: &str = "dead_letter_batch_middle";

/// Not a crash point: `slow_restore=return(MS)` makes each pass of a restore over a changelog
/// partition last at least `MS` milliseconds, serving the group consumer as it waits (a slow
/// changelog, so that a test can make a rebalance reach a restore half-way).
pub const SLOW_RESTORE: &str = "slow_restore";

/// Every crash point.
pub const ALL: [&str; 4] = [
    BEFORE_OFFSETS_COMMIT,
    BETWEEN_SEND_OFFSETS_AND_COMMIT,
    RESTORE_BETWEEN_PASSES,
    DEAD_LETTER_BATCH_MIDDLE,
];

/// A crash point: with the `failpoints` feature and `FAILPOINTS` naming it (action `return`),
/// the process aborts here; otherwise nothing.
#[cfg(feature = "failpoints")]
macro_rules! crash_point {
    ($name:expr) => {
        ::fail::fail_point!($name, |_| $crate::failpoint::crash($name))
    };
}

/// A crash point: nothing without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
macro_rules! crash_point {
    ($name:expr) => {{
        let _: &str = $name;
    }};
}

pub(crate) use crash_point;

/// Ends the process at crash point `name`, as a crash would (after one line on stderr, so a
/// test can tell this crash from another).
#[cfg(feature = "failpoints")]
pub fn crash(name: &str) -> ! {
    eprintln!("failpoint {name}: aborting the process");
    std::process::abort()
}

/// The duration failpoint `name` asks for (`name=return(MS)`), if it is set.
#[cfg(feature = "failpoints")]
pub fn duration(name: &str) -> Option<std::time::Duration> {
    fail::eval(name, |arg| {
        arg.and_then(|a| a.parse::<u64>().ok())
            .map(std::time::Duration::from_millis)
    })
    .flatten()
}

/// Without the `failpoints` feature: never set.
#[cfg(not(feature = "failpoints"))]
pub fn duration(_name: &str) -> Option<std::time::Duration> {
    None
}

/// Reads `FAILPOINTS` (see the module doc); keep the guard for the life of the process.
/// Panics on a malformed value.
#[cfg(feature = "failpoints")]
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

//! Blast-radius limits: whether a suspension may run now or waits for a human.

use std::time::Duration;

/// Where a limit that held comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    Global,
    Playbook,
}

impl LimitScope {
    /// The approval's reason, as stored (`global_limit`, `playbook_limit`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global_limit",
            Self::Playbook => "playbook_limit",
        }
    }
}

/// The service-wide limit: its setting, the suspensions in its window, whether it tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalWindow {
    pub max: i64,
    pub per: Duration,
    pub count: i64,
    /// An earlier suspension tripped it and no admin has reset it since.
    pub tripped: bool,
}

/// A playbook's own limit and the suspensions that playbook made in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaybookWindow {
    pub max: i64,
    pub per: Duration,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitDecision {
    /// Run it.
    Allow { reason: String },
    /// Wait for an approval. `trip` says the global limit trips with this action (recorded
    /// once, and the limit stays tripped until reset or its window passes).
    Hold {
        scope: LimitScope,
        trip: bool,
        reason: String,
    },
}

/// Whether limits apply to an action at all (and the store needs to count): only an enforced
/// suspension, not one an approver exempted, not one retaken after a crash (it was allowed).
pub fn applies(is_suspend: bool, enforce: bool, exempted: bool, retaken: bool) -> bool {
    is_suspend && enforce && !exempted && !retaken
}

/// The decision for an action limits apply to. The global limit is checked first: a tripped
/// service holds everything; then the playbook's own.
pub fn decide(global: Option<GlobalWindow>, playbook: Option<PlaybookWindow>) -> LimitDecision {
    if let Some(g) = global {
        if g.tripped {
            return LimitDecision::Hold {
                scope: LimitScope::Global,
                trip: false,
                reason: format!(
                    "the global limit ({} per {} s) tripped earlier and has not been reset",
                    g.max,
                    g.per.as_secs()
                ),
            };
        }
        if g.count >= g.max {
            return LimitDecision::Hold {
                scope: LimitScope::Global,
                trip: true,
                reason: format!(
                    "{} suspensions in the last {} s reach the global limit of {}",
                    g.count,
                    g.per.as_secs(),
                    g.max
                ),
            };
        }
    }
    if let Some(p) = playbook
        && p.count >= p.max
    {
        return LimitDecision::Hold {
            scope: LimitScope::Playbook,
            trip: false,
            reason: format!(
                "{} suspensions by this playbook in the last {} s reach its limit of {}",
                p.count,
                p.per.as_secs(),
                p.max
            ),
        };
    }
    let reason = match (global, playbook) {
        (None, None) => "no limit applies".to_owned(),
        _ => {
            let mut parts = vec![];
            if let Some(g) = global {
                parts.push(format!("global {}/{}", g.count, g.max));
            }
            if let Some(p) = playbook {
                parts.push(format!("playbook {}/{}", p.count, p.max));
            }
            format!("within limits ({})", parts.join(", "))
        }
    };
    LimitDecision::Allow { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    fn g(count: i64, max: i64, tripped: bool) -> Option<GlobalWindow> {
        Some(GlobalWindow {
            max,
            per: H,
            count,
            tripped,
        })
    }
    fn p(count: i64, max: i64) -> Option<PlaybookWindow> {
        Some(PlaybookWindow { max, per: H, count })
    }

    #[test]
    fn only_enforced_fresh_unexempted_suspensions_are_limited() {
        for (suspend, enforce, exempted, retaken, expected) in [
            (true, true, false, false, true),
            (false, true, false, false, false),
            (true, false, false, false, false),
            (true, true, true, false, false),
            (true, true, false, true, false),
        ] {
            assert_eq!(applies(suspend, enforce, exempted, retaken), expected);
        }
    }

    #[test]
    fn the_whole_table() {
        use LimitScope::*;
        let hold = |scope, trip| Some((scope, trip));
        for (global, playbook, expected) in [
            (None, None, None),
            (g(0, 10, false), None, None),
            (g(9, 10, false), None, None),
            (g(10, 10, false), None, hold(Global, true)),
            (g(11, 10, false), p(0, 5), hold(Global, true)),
            (g(0, 10, true), None, hold(Global, false)),
            (g(0, 10, true), p(9, 5), hold(Global, false)),
            (None, p(4, 5), None),
            (None, p(5, 5), hold(Playbook, false)),
            (g(3, 10, false), p(5, 5), hold(Playbook, false)),
            (g(3, 10, false), p(4, 5), None),
            (None, p(0, 0), hold(Playbook, false)),
        ] {
            let got = decide(global, playbook);
            let summary = match &got {
                LimitDecision::Allow { .. } => None,
                LimitDecision::Hold { scope, trip, .. } => Some((*scope, *trip)),
            };
            assert_eq!(summary, expected, "{global:?} {playbook:?}: {got:?}");
            let reason = match got {
                LimitDecision::Allow { reason } | LimitDecision::Hold { reason, .. } => reason,
            };
            assert!(!reason.is_empty());
        }
    }
}

//! A state-changing step on a resolved user: act, or skip and why.

use crate::domain::Email;
use crate::playbooks::{ProtectedPattern, RequireState};
use crate::users_api::UserState;

/// What the step would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Suspend,
    Reactivate,
}

impl Change {
    pub fn verb(self) -> &'static str {
        match self {
            Self::Suspend => "suspend",
            Self::Reactivate => "reactivate",
        }
    }
    /// The state the user is in once the change is made.
    pub fn target_state(self) -> UserState {
        match self {
            Self::Suspend => UserState::Suspended,
            Self::Reactivate => UserState::Active,
        }
    }
}

/// The user as 1Password has them now.
pub struct ResolvedUser<'a> {
    pub id: &'a str,
    pub email: Option<&'a Email>,
    pub state: &'a UserState,
}

/// Why a step does not act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    /// A protected-list entry covers the user (by id or e-mail).
    Protected,
    /// A state this version does not know (a newer API's): not safe to change.
    UnknownState,
    /// Already in the state the step would set.
    AlreadyThere,
    /// The playbook's `require_state` does not hold.
    StateRequirement,
    /// Dry run: what would happen is recorded, nothing changes.
    DryRun,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepDecision {
    Act { reason: String },
    Skip { kind: SkipKind, reason: String },
}

/// The decision, in order: protection, an unknown state, nothing to change, `require_state`,
/// dry run. `guards` are the playbook's and the service's protected lists.
pub fn decide(
    change: Change,
    user: &ResolvedUser<'_>,
    guards: &[&ProtectedPattern],
    require_state: Option<RequireState>,
    dry_run: bool,
) -> StepDecision {
    let skip = |kind, reason: String| StepDecision::Skip { kind, reason };
    if let Some(p) = guards.iter().find(|p| p.covers(Some(user.id), user.email)) {
        return skip(SkipKind::Protected, format!("protected by guard {p}"));
    }
    if !user.state.is_known() {
        return skip(
            SkipKind::UnknownState,
            format!(
                "the user is in a state lockout does not know ({}): not safe to {}",
                user.state.as_str(),
                change.verb()
            ),
        );
    }
    let wanted = change.target_state();
    if *user.state == wanted {
        return skip(
            SkipKind::AlreadyThere,
            format!("already {}", wanted.as_str().to_lowercase()),
        );
    }
    if let Some(r) = require_state {
        let (ok, name) = match r {
            RequireState::Active => (*user.state == UserState::Active, "ACTIVE"),
            RequireState::Suspended => (*user.state == UserState::Suspended, "SUSPENDED"),
        };
        if !ok {
            return skip(
                SkipKind::StateRequirement,
                format!(
                    "require_state {name} but the user is {}",
                    user.state.as_str()
                ),
            );
        }
    }
    if dry_run {
        return skip(
            SkipKind::DryRun,
            format!(
                "dry run: would {} a user who is {}",
                change.verb(),
                user.state.as_str()
            ),
        );
    }
    StepDecision::Act {
        reason: format!("{} a user who is {}", change.verb(), user.state.as_str()),
    }
}

/// Whether a suspend or reactivate must read the user before it acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPlan {
    /// Read first: the answer decides something.
    Read { why: String },
    /// Act at once and take the state from the answer (`:suspend` and `:reactivate` are
    /// idempotent and answer with the user).
    Skip { why: String },
}

/// One round trip where one is enough: read first only where the answer decides something.
/// `known` is the user as the directory last saw them (none: lockout does not know who the
/// target is).
pub fn read_first(
    change: Change,
    known: Option<&ResolvedUser<'_>>,
    guards: &[&ProtectedPattern],
    require_state: Option<RequireState>,
    dry_run: bool,
    rerun: bool,
) -> ReadPlan {
    let read = |why: &str| ReadPlan::Read { why: why.into() };
    if rerun {
        return read("a re-run: the attempt before may have changed the user already");
    }
    if require_state.is_some() {
        return read("require_state is decided on the user's state now");
    }
    if dry_run {
        return read("a dry run reports the state it would change");
    }
    let Some(u) = known else {
        return read("the directory does not know this user: the id is resolved by a read");
    };
    if u.email.is_none() {
        return read("the user's e-mail is unknown: protected lists name e-mails too");
    }
    if !u.state.is_known() {
        return read("the directory saw a state this version does not know");
    }
    if *u.state == change.target_state() {
        // Never skip on a view that may be stale: a read says whether it still holds.
        return read("the directory says the change is made already");
    }
    if guards.iter().any(|p| p.covers(Some(u.id), u.email)) {
        return read("a protected user: the guard is applied on a fresh read");
    }
    ReadPlan::Skip {
        why: "no require_state; id and e-mail known from the directory, not protected, state known: the change is idempotent and answers with the user".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_made_only_where_it_decides_something() {
        let email = Email::parse("a@example.com").unwrap();
        let (active, other) = (UserState::Active, UserState::Other("LOCKED".into()));
        let known = ResolvedUser {
            id: ID,
            email: Some(&email),
            state: &active,
        };
        let no_email = ResolvedUser {
            email: None,
            ..ResolvedUser { ..known }
        };
        let strange = ResolvedUser {
            state: &other,
            ..ResolvedUser { ..known }
        };
        let guard = ProtectedPattern::parse("a@example.com").unwrap();
        let (s, r) = (Change::Suspend, Change::Reactivate);
        let active_required = Some(RequireState::Active);
        // change, what the directory knows, guards, require_state, dry run, re-run → skip?
        type ReadCase<'a> = (
            Change,
            Option<&'a ResolvedUser<'a>>,
            Vec<&'a ProtectedPattern>,
            Option<RequireState>,
            bool,
            bool,
            bool,
        );
        let table: [ReadCase; 9] = [
            (s, Some(&known), vec![], None, false, false, true),
            (
                s,
                Some(&known),
                vec![],
                active_required,
                false,
                false,
                false,
            ),
            (s, Some(&known), vec![], None, true, false, false),
            (s, None, vec![], None, false, false, false),
            (s, Some(&no_email), vec![], None, false, false, false),
            (s, Some(&strange), vec![], None, false, false, false),
            (s, Some(&known), vec![&guard], None, false, false, false),
            (s, Some(&known), vec![], None, false, true, false),
            // The directory says already active: a read confirms it.
            (r, Some(&known), vec![], None, false, false, false),
        ];
        for (i, (change, user, guards, required, dry, rerun, skip)) in table.into_iter().enumerate()
        {
            let plan = read_first(change, user, &guards, required, dry, rerun);
            assert_eq!(
                matches!(plan, ReadPlan::Skip { .. }),
                skip,
                "case {i}: {plan:?}"
            );
        }
    }

    const ID: &str = "A3K7MZQ2XJRVHBKWH7WLSPU4TE";

    /// change, the user's state, guards, require_state, dry run → the skip expected (or act).
    type Case<'a> = (
        Change,
        &'a UserState,
        Vec<&'a ProtectedPattern>,
        Option<RequireState>,
        bool,
        Option<SkipKind>,
    );

    #[test]
    fn the_whole_table() {
        let email = Email::parse("alice@example.com").unwrap();
        let by_email = ProtectedPattern::parse("alice@example.com").unwrap();
        let by_domain = ProtectedPattern::parse("*@example.com").unwrap();
        let by_id = ProtectedPattern::parse(ID).unwrap();
        let other = ProtectedPattern::parse("bob@example.com").unwrap();
        let active = UserState::Active;
        let suspended = UserState::Suspended;
        let unknown = UserState::Other("RECOVERY_PENDING".into());
        let unspecified = UserState::StateUnspecified;
        use Change::*;
        use SkipKind::*;
        let cases: Vec<Case<'_>> = vec![
            (Suspend, &active, vec![], None, false, None),
            (Reactivate, &suspended, vec![], None, false, None),
            (Suspend, &active, vec![&other], None, false, None),
            (
                Suspend,
                &active,
                vec![&by_email],
                None,
                false,
                Some(Protected),
            ),
            (
                Suspend,
                &active,
                vec![&by_domain],
                None,
                false,
                Some(Protected),
            ),
            (
                Suspend,
                &active,
                vec![&other, &by_id],
                None,
                false,
                Some(Protected),
            ),
            // Protection wins over everything, a dry run included.
            (
                Suspend,
                &suspended,
                vec![&by_id],
                None,
                true,
                Some(Protected),
            ),
            (Suspend, &unknown, vec![], None, false, Some(UnknownState)),
            (Reactivate, &unknown, vec![], None, true, Some(UnknownState)),
            (
                Suspend,
                &unspecified,
                vec![],
                None,
                false,
                Some(UnknownState),
            ),
            (Suspend, &suspended, vec![], None, false, Some(AlreadyThere)),
            (Reactivate, &active, vec![], None, false, Some(AlreadyThere)),
            (
                Suspend,
                &active,
                vec![],
                Some(RequireState::Active),
                false,
                None,
            ),
            (
                Reactivate,
                &suspended,
                vec![],
                Some(RequireState::Active),
                false,
                Some(StateRequirement),
            ),
            (
                Reactivate,
                &suspended,
                vec![],
                Some(RequireState::Suspended),
                false,
                None,
            ),
            (Suspend, &active, vec![], None, true, Some(DryRun)),
            (
                Suspend,
                &active,
                vec![],
                Some(RequireState::Active),
                true,
                Some(DryRun),
            ),
        ];
        for (change, state, guards, require, dry, expected) in cases {
            let user = ResolvedUser {
                id: ID,
                email: Some(&email),
                state,
            };
            let got = decide(change, &user, &guards, require, dry);
            let kind = match &got {
                StepDecision::Act { .. } => None,
                StepDecision::Skip { kind, .. } => Some(*kind),
            };
            assert_eq!(
                kind, expected,
                "{change:?} {state:?} {require:?} dry={dry}: {got:?}"
            );
        }
    }
}

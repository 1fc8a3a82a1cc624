//! The Events API at work: each feed polled (cursor kept in the store, moved only after what
//! it covered is committed), new events turned into alerts by the `1password_events` source
//! with their windows, the user's recent activity frozen into actions that wait for a person,
//! and each suspension or reactivation checked against 1Password's own audit log.
//!
//! At least once, never planned twice: a page's alerts are committed before its events and
//! cursor; after a crash in between, the page comes again, its events are not known yet, and
//! their alerts are duplicates (the fingerprint is the feed and uuid) that are never planned.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditEvent;
use crate::context::AppContext;
use crate::domain::{format_time, now_rfc3339};
use crate::events_api::{EventFacts, EventsError, EventsRuntime, Feed, PageRequest};
use crate::store::{Action, StoreError, StoredEvent, Verification};

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Api(#[from] EventsError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Starts one task per feed the token may read, and the verification pass.
pub async fn run_feeds(ctx: Arc<AppContext>, shutdown: CancellationToken) {
    let Some(rt) = ctx.events.clone() else {
        return;
    };
    let introspection = rt.client.introspect().await.map_err(|e| e.to_string());
    match &introspection {
        Ok(i) => {
            tracing::info!(features = ?i.features, account = ?i.account_uuid, "Events API token introspected");
            for f in &rt.policy.feeds {
                if !i.allows(*f) {
                    tracing::warn!(
                        feed = f.as_str(),
                        "the Events API token lacks this feed's feature: it will be refused (401) until the token is replaced"
                    );
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "Events API introspection failed"),
    }
    *rt.introspection.lock().unwrap_or_else(|p| p.into_inner()) = Some(introspection);
    warm_history(&ctx, &rt).await;
    let mut tasks = vec![];
    for feed in rt.policy.feeds.clone() {
        tasks.push(tokio::spawn(run_feed(
            ctx.clone(),
            rt.clone(),
            feed,
            shutdown.clone(),
        )));
    }
    tasks.push(tokio::spawn(run_verifier(
        ctx.clone(),
        rt.clone(),
        shutdown,
    )));
    for t in tasks {
        let _ = t.await;
    }
}

/// Reads back the events the windows still reach, so a restart does not forget them.
async fn warm_history(ctx: &AppContext, rt: &EventsRuntime) {
    let keep = ctx
        .playbooks()
        .windows()
        .values()
        .map(|w| w.within)
        .max()
        .unwrap_or_default()
        .max(Duration::from_secs(3600));
    *rt.keep.lock().unwrap_or_else(|p| p.into_inner()) = keep;
    let since = format_time(OffsetDateTime::now_utc() - keep);
    match ctx.store.events_since(&since, 200_000).await {
        Ok(events) => rt.remember(events.into_iter().map(|e| e.facts)),
        Err(e) => tracing::warn!(error = %e, "could not read back recent events"),
    }
}

async fn run_feed(
    ctx: Arc<AppContext>,
    rt: Arc<EventsRuntime>,
    feed: Feed,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let wait = match poll_once(&ctx, &rt, feed).await {
            Ok(true) => {
                failures = 0;
                Duration::ZERO
            }
            Ok(false) => {
                failures = 0;
                rt.policy.poll_interval
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(feed = feed.as_str(), error = %e, "Events API poll failed");
                ctx.metrics
                    .inc("lockout_events_errors_total", &[("feed", feed.as_str())]);
                rt.update_health(feed, |h| {
                    h.last_error = Some(e.to_string());
                    h.errors_total += 1;
                });
                // The client retried already; between polls, back off further.
                rt.policy.poll_interval * 2u32.pow(failures.min(5))
            }
        };
        raise_or_clear_alarm(&ctx, &rt, feed).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait.min(Duration::from_secs(300))) => {}
        }
    }
}

/// One page of `feed`: its new events stored, alerted on, remembered. Whether more may follow.
pub async fn poll_once(
    ctx: &AppContext,
    rt: &EventsRuntime,
    feed: Feed,
) -> Result<bool, FeedError> {
    let from = ctx.store.event_cursor(feed.as_str()).await?;
    let now = OffsetDateTime::now_utc();
    let request = match &from {
        Some(c) => PageRequest::Cursor(c.clone()),
        None => PageRequest::Reset {
            limit: rt.policy.page_limit,
            start_time: Some(format_time(now - rt.policy.start_lookback)),
            end_time: None,
        },
    };
    let page = rt.client.page(feed, &request).await?;
    let read: Vec<(EventFacts, Value)> = page
        .items
        .into_iter()
        .map(|i| (EventFacts::read(feed, &i), i))
        .collect();
    let uuids: Vec<String> = read.iter().map(|(f, _)| f.uuid.clone()).collect();
    let known = ctx.store.known_events(feed.as_str(), &uuids).await?;
    let mut seen: std::collections::HashSet<String> = known.into_iter().collect();
    let received_at = now_rfc3339();
    let fresh: Vec<StoredEvent> = read
        .into_iter()
        .filter(|(f, _)| seen.insert(f.uuid.clone()))
        .map(|(facts, item)| StoredEvent {
            ts: facts
                .at()
                .map(format_time)
                .unwrap_or_else(|| received_at.clone()),
            facts,
            item,
            received_at: received_at.clone(),
        })
        .collect();
    if !fresh.is_empty() {
        alert_on(ctx, rt, &fresh).await?;
        // Test-only: a crash after the page's alerts, before its events and cursor.
        ctx.failpoint("events_after_alerts");
    }
    let moved = ctx
        .store
        .commit_event_page(feed.as_str(), from.as_deref(), &page.cursor, &fresh)
        .await?;
    if !moved {
        // Another replica read this page first; its events and alerts are committed.
        tracing::debug!(feed = feed.as_str(), "cursor moved by another replica");
    }
    let newest = fresh.iter().filter_map(|e| e.facts.at()).max();
    let n = fresh.len() as u64;
    ctx.metrics.add(
        "lockout_events_ingested_total",
        &[("feed", feed.as_str())],
        n,
    );
    rt.update_health(feed, |h| {
        h.last_ok_at = Some(OffsetDateTime::now_utc());
        h.last_error = None;
        h.events_total += n;
        if n > 0 {
            h.last_event_at = h.last_ok_at;
            h.newest_event_time = newest.max(h.newest_event_time);
        }
    });
    if feed == Feed::AuditEvents && n > 0 {
        verify_actions(ctx, rt).await?;
    }
    Ok(page.has_more)
}

/// The direct source: each new event an alert, with the playbooks' windows over the user's
/// history, committed before the page's cursor moves.
async fn alert_on(
    ctx: &AppContext,
    rt: &EventsRuntime,
    fresh: &[StoredEvent],
) -> Result<(), FeedError> {
    let source = rt.policy.source.as_deref().and_then(|s| ctx.sources.get(s));
    let Some(source) = source else {
        rt.remember(fresh.iter().map(|e| e.facts.clone()));
        return Ok(());
    };
    let body = serde_json::to_vec(&fresh.iter().map(|e| &e.item).collect::<Vec<_>>())
        .expect("JSON serialises");
    let parsed = match crate::alerts::parse(
        source.format,
        &source.mappings,
        source.default_severity,
        &body,
    ) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "events could not be read as alerts");
            return Ok(());
        }
    };
    let playbooks = ctx.playbooks();
    let specs = playbooks.windows();
    let mut with_windows = Vec::with_capacity(parsed.len());
    for (p, e) in parsed.into_iter().zip(fresh) {
        let history = rt.history_of(&e.facts);
        let windows = crate::events_api::windows::compute_all(&specs, &history, &e.facts);
        rt.remember([e.facts.clone()]);
        with_windows.push((p, windows));
    }
    let suppressions = ctx.suppressions().await?;
    let now = OffsetDateTime::now_utc();
    let accepted =
        super::intake::accept_parsed(ctx, &playbooks, &suppressions, source, with_windows, now);
    super::intake::store_accepted(ctx, source, accepted, now).await?;
    Ok(())
}

async fn raise_or_clear_alarm(ctx: &AppContext, rt: &EventsRuntime, feed: Feed) {
    let now = OffsetDateTime::now_utc();
    let health = rt.health_of(feed);
    let problem = health.problem(now, rt.policy.silence_alarm);
    let (kind, event, text) = match (&problem, health.alarmed) {
        (Some(p), false) => (
            "feed.unhealthy",
            "feed_unhealthy",
            format!(
                "lockout: the 1Password Events API {} feed is unhealthy: {p}",
                feed.as_str()
            ),
        ),
        (None, true) => (
            "feed.recovered",
            "feed_recovered",
            format!(
                "lockout: the 1Password Events API {} feed recovered",
                feed.as_str()
            ),
        ),
        _ => return,
    };
    rt.update_health(feed, |h| h.alarmed = problem.is_some());
    let data = json!({"feed": feed.as_str(), "problem": problem});
    if let Err(e) = ctx
        .store
        .append_audit(vec![AuditEvent::new(kind, "system").data(data.clone())])
        .await
    {
        tracing::error!(error = %e, "could not audit a feed's health");
    }
    tracing::warn!(feed = feed.as_str(), problem = ?problem, "{text}");
    ctx.notify_event(event, &text, data).await;
}

/// Checks recent suspensions and reactivations against 1Password's audit events, on a timer
/// (for those whose window ends with no event) as well as after each audit page.
async fn run_verifier(ctx: Arc<AppContext>, rt: Arc<EventsRuntime>, shutdown: CancellationToken) {
    if !rt.policy.feeds.contains(&Feed::AuditEvents) {
        return;
    }
    loop {
        if let Err(e) = verify_actions(&ctx, &rt).await {
            tracing::warn!(error = %e, "verification pass failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(rt.policy.poll_interval) => {}
        }
    }
}

/// The audit event that proves an action: the same action on the same user, by one of
/// lockout's own identities when they are configured, no earlier than the action started.
fn proof<'a>(
    action: &Action,
    events: &'a [StoredEvent],
    self_actors: &[String],
) -> Option<&'a StoredEvent> {
    let verb = match action.kind.as_str() {
        "suspend" => "suspend",
        _ => "reactive",
    };
    // Clocks differ: accept events up to a minute before lockout's start of the action.
    let from = action
        .started_at
        .as_deref()
        .map(|s| crate::domain::shift_time(s, -60))
        .unwrap_or_default();
    events.iter().find(|e| {
        e.facts.action.as_deref() == Some(verb)
            && e.ts >= from
            && (self_actors.is_empty()
                || e.facts
                    .user
                    .as_ref()
                    .is_some_and(|u| u.is_any_of(self_actors)))
    })
}

pub async fn verify_actions(ctx: &AppContext, rt: &EventsRuntime) -> Result<(), FeedError> {
    let now = OffsetDateTime::now_utc();
    let window = rt.policy.verify_window;
    // Look back over the window and as long again: an action a stopped service left unproven
    // is still recorded as such after a restart.
    let since = format_time(now - window * 2 - Duration::from_secs(60));
    let self_actors: Vec<String> = ctx
        .self_actors
        .iter()
        .map(|a| {
            if a.contains('@') {
                crate::domain::normalise_email(a)
            } else {
                a.clone()
            }
        })
        .collect();
    for action in ctx.store.unverified_actions(&since).await? {
        let Some(user_id) = action.user_id.clone() else {
            continue;
        };
        let from = action
            .started_at
            .clone()
            .unwrap_or_else(|| action.created_at.clone());
        let events = ctx
            .store
            .audit_events_on(&user_id, &crate::domain::shift_time(&from, -60))
            .await?;
        let finished = action
            .finished_at
            .as_deref()
            .and_then(crate::domain::parse_time)
            .unwrap_or(now);
        let (outcome, event) = match proof(&action, &events, &self_actors) {
            Some(e) => ("verified", Some(e)),
            None if now - finished >= window => ("unverified", None),
            None => continue,
        };
        let v = Verification {
            action_id: action.id.clone(),
            outcome: outcome.into(),
            event_uuid: event.map(|e| e.facts.uuid.clone()),
            recorded_at: now_rfc3339(),
        };
        let data = match event {
            Some(e) => {
                json!({"user_id": user_id, "event_uuid": e.facts.uuid, "event_time": e.facts.timestamp, "actor": e.facts.user, "action": e.facts.action})
            }
            None => {
                json!({"user_id": user_id, "waited_secs": window.as_secs(), "why": "no matching 1Password audit event"})
            }
        };
        let audit = action
            .audit_event(&format!("action.{outcome}"), "system")
            .data(data.clone());
        if ctx.store.record_verification(&v, audit).await? {
            ctx.metrics
                .inc("lockout_actions_verified_total", &[("outcome", outcome)]);
            if outcome == "unverified" {
                let text = format!(
                    "lockout: 1Password's audit log shows no {} of {} (action {}) within {}s",
                    action.kind.as_str(),
                    action.target,
                    action.id,
                    window.as_secs()
                );
                ctx.notify_event(
                    "action_unverified",
                    &text,
                    json!({"action_id": action.id, "detail": data}),
                )
                .await;
            }
        }
    }
    Ok(())
}

/// The user's recent activity as the Events API recorded it: what a person deciding about
/// the user should see, frozen with the action so it outlives 1Password's 120-day history.
pub async fn recent_activity(ctx: &AppContext, names: &[String]) -> Value {
    let Some(rt) = &ctx.events else {
        return json!({"available": false, "why": "events_api is not configured"});
    };
    let now = OffsetDateTime::now_utc();
    let since = format_time(now - rt.policy.context_window);
    let limit = rt.policy.context_max_events as i64;
    let mut out = json!({
        "available": true,
        "window_secs": rt.policy.context_window.as_secs(),
        "max_events": limit,
        "fetched_at": format_time(now),
    });
    for (feed, key) in [
        (Feed::SignInAttempts, "sign_ins"),
        (Feed::ItemUsages, "item_usages"),
    ] {
        let events = match ctx
            .store
            .user_events(names, feed.as_str(), &since, limit)
            .await
        {
            Ok(e) => e,
            Err(e) => {
                out[key] = json!({"error": e.to_string()});
                continue;
            }
        };
        out[key] = Value::Array(events.into_iter().map(|e| summary(&e.facts)).collect());
        if !rt.policy.feeds.contains(&feed) {
            out[format!("{key}_note")] = json!("this feed is not polled");
        }
    }
    out
}

fn summary(f: &EventFacts) -> Value {
    let mut v = json!({"uuid": f.uuid, "timestamp": f.timestamp});
    for (k, x) in [
        ("category", &f.category),
        ("type", &f.r#type),
        ("action", &f.action),
        ("country", &f.country),
        ("ip", &f.ip),
    ] {
        if let Some(x) = x {
            v[k] = json!(x);
        }
    }
    if !f.unknown.is_empty() {
        v["unknown"] = json!(f.unknown);
    }
    v
}

/// Freezes the target's recent activity into an action (once): its own record,
/// `action.context`, and what `GET /v1/approvals/{id}` and the console show.
pub async fn freeze_context(ctx: &AppContext, action: &Action) -> Result<(), StoreError> {
    if ctx.store.action_context(&action.id).await?.is_some() {
        return Ok(());
    }
    let mut names = match crate::domain::UserRef::parse(&action.target) {
        Ok(target) => {
            let log = crate::users_api::CallLog::default();
            let (names, _) = ctx.known_names(&target, &log, false).await;
            ctx.record_calls(&log.take());
            names
        }
        Err(_) => vec![action.target.clone()],
    };
    names.extend(action.user_id.clone());
    names.sort();
    names.dedup();
    let activity = recent_activity(ctx, &names).await;
    let audit = action
        .audit_event("action.context", "system")
        .data(json!({"recent_activity": activity}));
    ctx.store
        .record_action_context(&action.id, &activity, audit)
        .await?;
    Ok(())
}

//! How many Users API requests may be in flight at once: at most the configured bound, and
//! fewer while 1Password says to slow down. The limit halves on a 429 (pausing new requests
//! for its `Retry-After`) or a 5xx, and grows by one after a limit's worth of answers that
//! were neither (additive increase, multiplicative decrease): a rate-limited tenant is not
//! hammered, an unlimited one is not throttled.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// What an answer says about the API's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Answered (any status but 429 and 5xx).
    Fine,
    /// 429 or 5xx, or no answer: slow down.
    Overloaded,
}

/// The limit after an answer: pure, table-tested. `good` counts the fine answers since the
/// limit last changed.
pub fn next_limit(limit: usize, max: usize, good: usize, signal: Signal) -> (usize, usize) {
    match signal {
        Signal::Overloaded => ((limit / 2).max(1), 0),
        Signal::Fine if good + 1 >= limit && limit < max => (limit + 1, 0),
        Signal::Fine => (limit, (good + 1).min(limit)),
    }
}

#[derive(Debug)]
struct State {
    limit: usize,
    in_flight: usize,
    good: usize,
    paused_until: Option<Instant>,
    peak: usize,
    backoffs: u64,
}

/// The shared limiter of one client.
#[derive(Debug)]
pub struct AdaptiveLimit {
    max: usize,
    state: Mutex<State>,
    released: Notify,
}

/// One request's place; dropping it frees the place.
pub struct Permit<'a>(&'a AdaptiveLimit);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.in_flight -= 1;
        drop(s);
        self.0.released.notify_one();
    }
}

/// The limiter's figures, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSnapshot {
    pub limit: usize,
    pub max: usize,
    pub in_flight: usize,
    pub peak: usize,
    pub backoffs: u64,
}

impl AdaptiveLimit {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            max,
            state: Mutex::new(State {
                limit: max,
                in_flight: 0,
                good: 0,
                paused_until: None,
                peak: 0,
                backoffs: 0,
            }),
            released: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a place (and for the end of a `Retry-After` pause).
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let pause = {
                let mut s = self.lock();
                match s.paused_until {
                    Some(until) if until > Instant::now() => Some(until),
                    _ => {
                        s.paused_until = None;
                        if s.in_flight < s.limit {
                            s.in_flight += 1;
                            s.peak = s.peak.max(s.in_flight);
                            return Permit(self);
                        }
                        None
                    }
                }
            };
            match pause {
                Some(until) => tokio::time::sleep_until(until).await,
                None => self.released.notified().await,
            }
        }
    }

    /// Records what an answer said; `retry_after` pauses new requests that long.
    pub fn record(&self, signal: Signal, retry_after: Option<Duration>) {
        let mut s = self.lock();
        let before = s.limit;
        (s.limit, s.good) = next_limit(s.limit, self.max, s.good, signal);
        if signal == Signal::Overloaded {
            s.backoffs += 1;
            if let Some(ra) = retry_after {
                let until = Instant::now() + ra;
                s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
            }
        }
        let grew = s.limit > before;
        drop(s);
        if grew {
            self.released.notify_one();
        }
    }

    pub fn snapshot(&self) -> LimitSnapshot {
        let s = self.lock();
        LimitSnapshot {
            limit: s.limit,
            max: self.max,
            in_flight: s.in_flight,
            peak: s.peak,
            backoffs: s.backoffs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_halves_on_overload_and_grows_by_one_per_limit_of_good_answers() {
        use Signal::*;
        // (limit, max, good, signal) -> (limit, good)
        let table = [
            ((32, 32, 0, Overloaded), (16, 0)),
            ((1, 32, 5, Overloaded), (1, 0)),
            ((3, 32, 0, Fine), (3, 1)),
            ((3, 32, 2, Fine), (4, 0)),
            ((32, 32, 31, Fine), (32, 32)),
            ((32, 32, 32, Fine), (32, 32)),
        ];
        for ((limit, max, good, signal), want) in table {
            assert_eq!(
                next_limit(limit, max, good, signal),
                want,
                "{limit} {good} {signal:?}"
            );
        }
    }

    #[tokio::test]
    async fn never_more_in_flight_than_the_limit_and_a_retry_after_pauses() {
        let l = std::sync::Arc::new(AdaptiveLimit::new(4));
        l.record(Signal::Overloaded, None);
        assert_eq!(l.snapshot().limit, 2);
        let mut tasks = vec![];
        for _ in 0..20 {
            let l = l.clone();
            tasks.push(tokio::spawn(async move {
                let _p = l.acquire().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
                l.record(Signal::Fine, None);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let s = l.snapshot();
        assert!(s.peak <= 4, "{s:?}");
        assert_eq!(s.in_flight, 0);
        assert_eq!(s.limit, 4, "it grew back: {s:?}");
        l.record(Signal::Overloaded, Some(Duration::from_millis(200)));
        let started = Instant::now();
        drop(l.acquire().await);
        assert!(started.elapsed() >= Duration::from_millis(190));
    }
}

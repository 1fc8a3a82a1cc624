//! Access-token cache: one token shared by every request, one refresh in flight at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;

pub(crate) struct CachedToken {
    pub token: Arc<SecretString>,
    pub refresh_at: Instant,
    pub generation: u64,
}

#[derive(Default)]
pub(crate) struct TokenCache {
    // A tokio mutex held across the token request: concurrent callers queue behind the one
    // refresh instead of each asking for a token (single flight).
    pub state: tokio::sync::Mutex<TokenState>,
}

#[derive(Default)]
pub(crate) struct TokenState {
    pub current: Option<CachedToken>,
    pub next_generation: u64,
}

impl TokenState {
    pub fn valid(&self) -> Option<(u64, Arc<SecretString>)> {
        self.current
            .as_ref()
            .filter(|t| Instant::now() < t.refresh_at)
            .map(|t| (t.generation, t.token.clone()))
    }

    pub fn store(
        &mut self,
        token: SecretString,
        lifetime: Duration,
        margin: Duration,
    ) -> (u64, Arc<SecretString>) {
        // Refresh ahead of expiry, but never spend more than half the lifetime as margin.
        let margin = margin.min(lifetime / 2);
        self.next_generation += 1;
        let token = Arc::new(token);
        self.current = Some(CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - margin,
            generation: self.next_generation,
        });
        (self.next_generation, token)
    }

    /// Drop the token a request found rejected, unless another request already replaced it.
    pub fn invalidate(&mut self, generation: u64) {
        if self
            .current
            .as_ref()
            .is_some_and(|t| t.generation == generation)
        {
            self.current = None;
        }
    }
}

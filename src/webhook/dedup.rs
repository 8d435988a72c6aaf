//! [`Dedup`]: the ids of events applied recently, so that a redelivery is applied once.

use std::future::Future;

/// A bounded set of the ids of recently applied events (a moka cache). Concurrent deliveries of
/// one id run the application once: the others wait for it and learn its result. Shared by the
/// receivers of this module and of `stripe`.
pub(crate) struct Dedup {
    applied: moka::future::Cache<String, ()>,
}

impl Dedup {
    /// Remembers up to `capacity` ids (`0` remembers none); `name` names the cache.
    pub(crate) fn new(name: &str, capacity: u64) -> Self {
        Self {
            applied: moka::future::Cache::builder()
                .name(name)
                .max_capacity(capacity)
                .build(),
        }
    }

    /// Runs `apply` unless `id` was applied recently: `Ok(true)` when it ran now and succeeded
    /// (the id is remembered), `Ok(false)` when the id was applied already, or concurrently.
    /// A failure is not remembered, so that a retry applies the event.
    pub(crate) async fn once<F>(&self, id: &str, apply: F) -> Result<bool, String>
    where
        F: Future<Output = Result<(), String>>,
    {
        self.applied
            .entry(id.to_owned())
            .or_try_insert_with(apply)
            .await
            .map(|entry| entry.is_fresh())
            .map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_id_applies_once_and_a_failure_is_not_remembered() {
        let dedup = Dedup::new("test", 16);
        assert_eq!(
            dedup.once("e1", async { Err("down".to_owned()) }).await,
            Err("down".to_owned())
        );
        assert_eq!(dedup.once("e1", async { Ok(()) }).await, Ok(true));
        assert_eq!(
            dedup.once("e1", async { panic!("not run again") }).await,
            Ok(false)
        );
        assert_eq!(dedup.once("e2", async { Ok(()) }).await, Ok(true));
    }
}

//! Claiming: the claim script leases, then the bodies are read with a
//! plain `HMGET`; leases whose bodies cannot be read are handed back.

use std::time::{Duration, SystemTime};

use redis::Value;

use crate::redis_connection::within;

use super::{
    duration_millis,
    keys::BODIES,
    reply::{array, bytes, decode, int, list, malformed, text},
    scripts::{token_arg, CHUNK, CLAIM, RELEASE},
    ClaimRequest, Claimed, Failure, InboxFuture, InboxStore, Lease, LeaseToken,
    ReceivedNotification, RedisStore, StoreError, LAPSED, MAX_CLAIM, MISSING_BODY,
};

impl RedisStore {
    /// Leases up to `request.max` notifications (see [`InboxStore::claim`]).
    pub(super) fn lease(&self, request: ClaimRequest) -> InboxFuture<Claimed> {
        let token = LeaseToken::random();
        let args = vec![
            request.max.clamp(1, MAX_CLAIM).to_string().into_bytes(),
            duration_millis(request.lease)
                .max(1)
                .to_string()
                .into_bytes(),
            request.max_attempts.max(1).to_string().into_bytes(),
            token.value().to_string().into_bytes(),
            LAPSED.as_bytes().to_vec(),
            CHUNK.to_string().into_bytes(),
        ];
        let leasing = self.invoke(&CLAIM, args, |value| {
            let now = SystemTime::now();
            let [next_due, claimed] = array::<2>(value)?;
            let next_due = u64::try_from(int(&next_due)?)
                .ok()
                .map(|ms| now + Duration::from_millis(ms));
            let claimed = list(claimed)?
                .into_iter()
                .map(|lease| {
                    let [id, attempt, message] = array::<3>(lease)?;
                    let attempt = u32::try_from(int(&attempt)?).unwrap_or(u32::MAX);
                    Ok((text(id)?, attempt, bytes(message)?))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((claimed, next_due))
        });
        let store = self.clone();
        let started = tokio::time::Instant::now();
        Box::pin(async move {
            let (claimed, next_due) = leasing.await?;
            if claimed.is_empty() {
                return Ok(Claimed::new(Vec::new(), next_due));
            }
            // The bodies, by a plain command: through Lua, Redis would
            // hash and copy every byte of each. Within what is left of
            // the operation's timeout.
            let mut reading = redis::cmd("HMGET");
            reading.arg(&store.keys.all[BODIES]);
            for (id, _, _) in &claimed {
                reading.arg(id);
            }
            let timeout = store.timeout;
            let left = timeout.saturating_sub(started.elapsed());
            let read = within(&store.connection, left, |mut connection| async move {
                reading.query_async::<Vec<Value>>(&mut connection).await
            })
            .await;
            let bodies = match read {
                Ok(Ok(bodies)) if bodies.len() == claimed.len() => bodies,
                failed => {
                    // The leases were taken: handed back at once, with
                    // their attempts, rather than left to lapse as failed
                    // attempts of notifications no handler saw.
                    let ids = claimed.into_iter().map(|(id, ..)| id).collect();
                    store.release_in_background(ids, token);
                    return Err(match failed {
                        Ok(Ok(_)) => malformed(),
                        Ok(Err(error)) => StoreError::unavailable(error),
                        Err(_) => StoreError::timed_out(timeout),
                    });
                }
            };
            let mut leases = Vec::with_capacity(claimed.len());
            let mut missing = Vec::new();
            for ((id, attempt, message), body) in claimed.into_iter().zip(bodies) {
                let absent = body == Value::Nil;
                let (_, received_at, topic, body) = decode(message, body)?;
                // Neither in its hash nor after the topic: not handed out.
                if absent && body.is_empty() {
                    missing.push(id);
                    continue;
                }
                leases.push(Lease::new(
                    ReceivedNotification::new(id, topic, body, received_at, attempt),
                    token.clone(),
                ));
            }
            if !missing.is_empty() {
                store.bury_missing_in_background(missing, token);
            }
            Ok(Claimed::new(leases, next_due))
        })
    }

    /// Hands back the leases of `ids` taken with `token` (a claim that
    /// failed after its script leased them), without holding up the
    /// caller; what cannot be handed back lapses as usual.
    fn release_in_background(&self, ids: Vec<String>, token: LeaseToken) {
        let mut args = Vec::with_capacity(ids.len() * 2);
        for id in ids {
            args.push(id.into_bytes());
            args.push(token_arg(&token));
        }
        let releasing = self.invoke(&RELEASE, args, |value| int(&value));
        tokio::spawn(async move {
            if let Err(error) = releasing.await {
                tracing::debug!(
                    target: "tower_intercom::inbox",
                    "handing back the leases of a failed claim failed (they will lapse): {error}"
                );
            }
        });
    }

    /// Marks dead the leased notifications of `ids` whose body is in
    /// neither `bodies` nor their message (deleted by hand or evicted):
    /// handing them out empty would lose them quietly, and leaving them
    /// leased would retry them until they died of lapses. A lease that
    /// is no longer `token`'s is left alone: its body went because
    /// another worker finished the notification after this lease lapsed.
    fn bury_missing_in_background(&self, ids: Vec<String>, token: LeaseToken) {
        let store = self.clone();
        tokio::spawn(async move {
            for id in ids {
                let failure = Failure::dead(MISSING_BODY);
                match store.fail(&id, &token, failure).await {
                    Ok(true) => tracing::warn!(
                        target: "tower_intercom::inbox",
                        id = %id,
                        "a notification's body is missing from Redis (deleted or evicted): \
                         it is dead, not handed to the handler"
                    ),
                    Ok(false) => {}
                    Err(error) => tracing::debug!(
                        target: "tower_intercom::inbox",
                        id = %id,
                        "recording a missing body failed (the lease will lapse): {error}"
                    ),
                }
            }
        });
    }
}

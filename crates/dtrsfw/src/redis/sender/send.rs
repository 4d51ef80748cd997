//! The send flows, each written once over the I/O edge ([`SendIo`]), and the public sync
//! and async methods that choose the edge.

use std::time::SystemTime;

use redis::Value;

use super::attempts::Attempts;
use super::command::{ChunkLabel, parse_id, parse_ids, xadd, xadd_pipeline};
use super::edge::{AsyncIo, SendIo, SyncIo};
use super::{EntryId, Message, Sender};
use crate::redis::error::Result;
use crate::redis::observe;
use crate::redis::sync_edge::run_sync;

impl Sender {
    /// Appends `message` to the stream `channel` and returns its entry ID. The channel must
    /// be registered. Transient failures are retried (see the [module
    /// docs](super#retries-and-duplicates), a retry may write a duplicate).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when the channel
    /// is not registered; the last error when every attempt failed transiently; any other
    /// error of the server (`WRONGTYPE`, an ACL refusal, ...) or a reply that is not an
    /// entry ID at once.
    pub async fn send_message(&self, channel: &str, message: &Message) -> Result<EntryId> {
        let mut io = AsyncIo::new(&self.inner.redis);
        let send = self.send_one(&mut io, channel, message);
        observe::sending(channel, 1, send).await
    }

    /// Appends `messages` to the stream `channel`, in order, pipelined: one round trip per
    /// chunk of at most [`SenderOptions::set_batch_size`](super::SenderOptions::set_batch_size)
    /// messages. Returns the entry IDs in the order of `messages` (strictly increasing).
    ///
    /// A chunk that fails transiently is sent again whole, so a retry may duplicate the
    /// chunk's entries that were written. On a final error, the chunks before the failing
    /// one are in the stream; the error message says how many messages were written.
    ///
    /// # Errors
    ///
    /// As [`send_message`](Self::send_message), for the first chunk that fails finally; a
    /// refused `XADD` of a chunk is that chunk's error, with the server's code.
    pub async fn send_messages(&self, channel: &str, messages: &[Message]) -> Result<Vec<EntryId>> {
        let mut io = AsyncIo::new(&self.inner.redis);
        let send = self.send_batch(&mut io, channel, messages);
        observe::sending(channel, messages.len(), send).await
    }

    /// The blocking twin of [`send_message`](Self::send_message), on the sync connection
    /// pool.
    ///
    /// # Errors
    ///
    /// As [`send_message`](Self::send_message).
    pub fn send_message_blocking(&self, channel: &str, message: &Message) -> Result<EntryId> {
        let mut io = SyncIo::new(&self.inner.redis);
        let send = self.send_one(&mut io, channel, message);
        run_sync(observe::sending(channel, 1, send))
    }

    /// The blocking twin of [`send_messages`](Self::send_messages), on the sync connection
    /// pool.
    ///
    /// # Errors
    ///
    /// As [`send_messages`](Self::send_messages).
    pub fn send_messages_blocking(&self, channel: &str, messages: &[Message]) -> Result<Vec<EntryId>> {
        let mut io = SyncIo::new(&self.inner.redis);
        let send = self.send_batch(&mut io, channel, messages);
        run_sync(observe::sending(channel, messages.len(), send))
    }

    /// One message: one `XADD`, tried until it succeeds or the error is final.
    async fn send_one<Io: SendIo>(&self, io: &mut Io, channel: &str, message: &Message) -> Result<EntryId> {
        if self.inner.options.durability.is_required() {
            // The XADD and its waits go in one pipeline: the batch flow, with one message.
            let ids = self.send_batch(io, channel, std::slice::from_ref(message)).await?;
            return Ok(ids[0]);
        }
        let cmd = xadd(channel, self.retention_of(channel)?, message, SystemTime::now());
        let mut attempts = Attempts::new(&self.inner.options, channel);
        loop {
            let context = || attempts.context(&"sending a message");
            let result = io
                .query::<Value>(&cmd, &context)
                .await
                .and_then(|reply| parse_id(&reply));
            match result {
                Ok(id) => {
                    tracing::debug!(channel, message = message.name(), %id, "message sent");
                    return Ok(id);
                }
                Err(err) => io.sleep(attempts.failed(err)?).await,
            }
        }
    }

    /// A batch: one pipeline per chunk, each tried until it succeeds or the error is final.
    async fn send_batch<Io: SendIo>(&self, io: &mut Io, channel: &str, messages: &[Message]) -> Result<Vec<EntryId>> {
        let retention = self.retention_of(channel)?;
        let batch_size = self.inner.options.batch_size;
        let durability = &self.inner.options.durability;
        if durability.is_required() {
            durability.check_fits(&self.inner.redis)?;
            durability.probe(&self.inner.redis, io).await?;
        }
        let mut ids = Vec::with_capacity(messages.len());
        for (index, chunk) in messages.chunks(batch_size).enumerate() {
            let start = index * batch_size;
            let label = ChunkLabel {
                start,
                end: start + chunk.len(),
                total: messages.len(),
            };
            let mut pipe = xadd_pipeline(channel, retention, chunk, SystemTime::now());
            durability.append_to(&mut pipe);
            let mut attempts = Attempts::new(&self.inner.options, channel);
            loop {
                let context = || attempts.context(&label);
                let result = match io.query::<Vec<Value>>(&pipe, &context).await {
                    Ok(replies) => {
                        let (xadds, waits) = replies.split_at(replies.len().saturating_sub(durability.reply_count()));
                        parse_ids(xadds, chunk.len(), &mut ids, &context)
                            .and_then(|()| durability.check(waits, &ids, &context))
                    }
                    Err(err) => Err(err),
                };
                match result {
                    Ok(()) => break,
                    Err(err) => {
                        // A reply that failed to parse halfway must not leave IDs behind.
                        ids.truncate(start);
                        io.sleep(attempts.failed(err)?).await;
                    }
                }
            }
        }
        tracing::debug!(channel, count = messages.len(), "messages sent");
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::{RedisConfig, RedisInstance};

    #[test]
    fn async_sends_can_be_spawned() {
        fn spawnable<F: std::future::Future + Send>(_: &F) {}
        let redis = RedisInstance::new(RedisConfig::new().set_redis_host("localhost")).unwrap();
        let sender = Sender::new(&redis);
        let message = Message::from_json("n", "{}").unwrap();
        spawnable(&sender.send_message("c", &message));
        spawnable(&sender.send_messages("c", std::slice::from_ref(&message)));
    }
}

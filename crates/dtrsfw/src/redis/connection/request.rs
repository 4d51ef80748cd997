//! [`Request`]: what the feature flows send in one round trip (a command or a pipeline),
//! on either kind of connection, so each flow is written once over its sync/async edge.

use redis::{Cmd, ConnectionLike, FromRedisValue, Pipeline, RedisResult};

use super::aio::AsyncRedisClient;

/// A command or a pipeline, sent on a sync connection or on the async client.
pub(crate) trait Request {
    /// Sends it on a sync connection (a pooled client, a cache connection, ...).
    fn query_sync<T: FromRedisValue>(&self, conn: &mut dyn ConnectionLike) -> RedisResult<T>;

    /// Sends it on the async client.
    async fn query_async<T: FromRedisValue>(&self, client: &mut AsyncRedisClient) -> RedisResult<T>;
}

impl Request for Cmd {
    fn query_sync<T: FromRedisValue>(&self, conn: &mut dyn ConnectionLike) -> RedisResult<T> {
        self.query(conn)
    }

    async fn query_async<T: FromRedisValue>(&self, client: &mut AsyncRedisClient) -> RedisResult<T> {
        // What `Cmd::query_async` does, minus the boxed future of the `ConnectionLike`
        // call: one allocation less per command.
        let reply = client.send_command(self).await?;
        Ok(redis::from_redis_value(reply.extract_error()?)?)
    }
}

impl Request for Pipeline {
    fn query_sync<T: FromRedisValue>(&self, conn: &mut dyn ConnectionLike) -> RedisResult<T> {
        self.query(conn)
    }

    async fn query_async<T: FromRedisValue>(&self, client: &mut AsyncRedisClient) -> RedisResult<T> {
        Pipeline::query_async(self, client).await
    }
}

//! `dtredis cleanup <channel> --consumers a,b`: the consumer's cleanup rule for those
//! services, without joining any group.

use dtrsfw::redis::{ChannelOptions, Consumer, RedisInstance};

/// Deletes what every listed service has received and acknowledged; returns the count.
pub(crate) async fn run(redis: &RedisInstance, channel: &str, services: &[String]) -> anyhow::Result<u64> {
    anyhow::ensure!(!services.is_empty(), "--consumers lists no service");
    // `read_messages(false)`: this process only trims; it creates no group of its own.
    let consumer = Consumer::new(redis, "dtredis-cleanup")?;
    consumer
        .register_channel(
            channel,
            ChannelOptions::new()
                .read_messages(false)
                .consumers(services.iter().cloned())
                .message_cleanup(true),
        )
        .await?;
    Ok(consumer.clean_up_consumed_messages().await?)
}

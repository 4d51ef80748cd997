//! `dtredis dlq <channel> list|replay|purge`: the dead-letter stream `<channel>:dlq`.

use dtrsfw::redis::RedisInstance;
use dtrsfw::redis::streamer::{DeadLetter, list_dead_letters, purge_dead_letters, replay_dead_letters};

/// `list`: one line per dead letter (JSON lines with `--json`).
pub(crate) async fn list(redis: &RedisInstance, channel: &str, json: bool) -> anyhow::Result<String> {
    let letters = list_dead_letters(redis, channel, None).await?;
    let mut out = String::new();
    for letter in &letters {
        out.push_str(&if json {
            serde_json::to_string(letter)?
        } else {
            render(letter)
        });
        out.push('\n');
    }
    if !json && letters.is_empty() {
        out.push_str("dead-letter stream is empty\n");
    }
    Ok(out)
}

fn render(letter: &DeadLetter) -> String {
    format!(
        "{} (was {}) {} — {} after {} deliveries to {}: {}",
        letter.dlq_id,
        letter.id,
        letter.name.as_deref().unwrap_or("<no name>"),
        letter.reason,
        letter.deliveries,
        letter.service,
        letter.error
    )
}

/// `replay [--id ID]`: re-publishes, removes from the dead-letter stream, reports.
pub(crate) async fn replay(redis: &RedisInstance, channel: &str, id: Option<&str>) -> anyhow::Result<String> {
    let report = replay_dead_letters(redis, channel, id).await?;
    let mut out = format!("replayed {}", report.replayed);
    if report.skipped > 0 {
        out.push_str(&format!(", kept {} malformed (not replayable)", report.skipped));
    }
    Ok(out)
}

/// `purge`: deletes the dead-letter stream, prints how many entries it held.
pub(crate) async fn purge(redis: &RedisInstance, channel: &str) -> anyhow::Result<String> {
    Ok(purge_dead_letters(redis, channel).await?.to_string())
}

//! `RedisConfig`: the connection settings, as a chainable builder.
//!
//! The setters mirror `dtpyfw.redis.config.RedisConfig` one for one (same names, same
//! defaults). Setters accept anything: [`RedisInstance::new`](super::RedisInstance::new)
//! validates the whole configuration at once (by the rules in this module) and names the
//! offending field, so a configuration read from the environment and one built in code
//! fail the same way.

// Layering: config sits at the bottom with `error`: it imports nothing of the crate
// but the error type. `redis_config` is the builder, `env` reads `REDIS_*`, `validate`
// says what a valid configuration is (and which URL schemes mean a cluster), `redact`
// masks credentials wherever a URL is shown.

mod env;
mod redact;
mod redis_config;
mod validate;

pub(crate) use self::redact::redact_url;
pub use self::redis_config::{
    ConfigValue, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEALTH_CHECK_INTERVAL, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SOCKET_TIMEOUT, RedisConfig,
};
pub(crate) use self::validate::{
    CLUSTER_TLS_SCHEME, Endpoint, Parts, SENTINEL_TLS_SCHEME, is_cluster_url, is_sentinel_url,
};

//! One module per `dtredis` subcommand. Each returns what to print, so `main` owns
//! stdout, exit codes and error formatting.

pub(crate) mod cache;
pub(crate) mod cleanup;
pub(crate) mod consume;
pub(crate) mod demo;
pub(crate) mod dlq;
pub(crate) mod info;
pub(crate) mod send;

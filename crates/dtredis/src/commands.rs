//! One module per `dtredis` subcommand. Each returns what to print, so `main` owns
//! stdout, exit codes and error formatting.

pub(crate) mod info;

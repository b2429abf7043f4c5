//! The real `runbox serve` binary on a loopback port: end to end over HTTP and WebSocket, async executions across
//! restarts, faults from outside, and a private data directory with an honest readiness check; and the engine's
//! life on a host, which `runbox serve`, `runbox run` and `runbox mcp` share.

mod async_executions_survive_restarts;
mod data_dir_is_private_and_readiness_tells_the_truth;
mod every_command_shares_the_engine_lifecycle;
mod faults_are_reported_and_contained;
mod keep_alive_survives_early_answers;
mod server_binary_end_to_end;

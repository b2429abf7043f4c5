//! Several nodes: `runbox serve` processes sharing one PostgreSQL job store, and three nodes behind nginx as a
//! cluster's clients meet them. The nodes listen on 127.0.0.2 and up, each with its own data directory and parent
//! cgroup, so they never touch another test's sandboxes.

mod cluster_support;
mod postgres_support;

mod cluster_through_a_front_door;
mod jobs_on_a_shared_store;

//! The sandbox itself, through `runbox run`: what a program inside can and cannot see or do (escapes, seccomp,
//! network), that each limit holds, that output survives byte for byte, that nothing outlives a run, and that a
//! protection that cannot be applied stops runs (fails closed).

mod a_stale_jail_binary_is_never_used;
mod concurrent_runs_are_isolated;
mod escapes_are_contained;
mod limits_are_enforced;
mod network_is_isolated;
mod output_is_lossless;
mod protections_fail_closed;
mod seccomp_denies_each_family;
mod timeout_kills_grandchildren;

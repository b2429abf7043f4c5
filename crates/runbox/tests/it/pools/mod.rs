//! Warm pools and zygotes: a run served by a warm sandbox is indistinguishable from a cold one, and zygote children
//! share nothing with each other or with the zygote.

mod warm_pools_behave_like_cold_runs;
mod zygote_children_share_nothing;

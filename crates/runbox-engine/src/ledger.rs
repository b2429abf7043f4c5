//! Aggregate limits: what all of runbox, and each API key, may hold at once. The whole server's sandboxes live
//! under one parent cgroup whose memory and process limits the kernel enforces (applied by the server at start);
//! per key, every sandbox started for the key (a session, a run) reserves its own memory and process limits here
//! before it starts, and a reservation that would take the key past its caps is refused. Each sandbox's cgroup
//! already holds it to its own limits, so a key never uses more than the sum of its reservations.

use crate::sync::LockOrRecover;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::machine;

/// Operator settings for aggregate limits. Defaults are sized from the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AggregateLimits {
    /// The parent cgroup (relative to each hierarchy's root) of every sandbox of this server.
    pub cgroup_parent: String,
    /// Memory of all sandboxes together, in MiB (the parent cgroup's limit). Default: three quarters of the
    /// machine's memory.
    pub memory_mb: u64,
    /// Processes of all sandboxes together (the parent cgroup's `pids.max`). Default: half of what the kernel allows.
    pub processes: u64,
    /// Memory one key's sandboxes may reserve together, in MiB (sum of their memory limits). Default: four times
    /// `memory_mb`: a limit is a ceiling that idle sessions stay far below, so reservations overcommit (the parent
    /// cgroup caps what is really used), while the key's default session cap (64 at 512 MiB) still fits.
    pub key_memory_mb: u64,
    /// Processes one key's sandboxes may reserve together (sum of their process limits). Default: half of
    /// `processes`.
    pub key_processes: u64,
}

impl Default for AggregateLimits {
    fn default() -> Self {
        let memory_mb = (machine::memory_bytes() >> 20) * 3 / 4;
        let processes = machine::max_processes() / 2;
        AggregateLimits {
            cgroup_parent: "runbox".into(),
            memory_mb,
            processes,
            key_memory_mb: memory_mb * 4,
            key_processes: processes / 2,
        }
    }
}

impl AggregateLimits {
    pub fn validate(&self) -> Result<(), String> {
        let parent = std::path::Path::new(&self.cgroup_parent);
        if self.cgroup_parent.is_empty()
            || parent.is_absolute()
            || parent
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "aggregate.cgroup_parent must be a relative path without `..`, not {:?}",
                self.cgroup_parent
            ));
        }
        if self.memory_mb == 0 || self.processes == 0 || self.key_memory_mb == 0 || self.key_processes == 0 {
            return Err("aggregate limits must be at least 1".into());
        }
        Ok(())
    }
}

/// What each key has reserved.
#[derive(Debug)]
pub struct Ledger {
    caps: Mutex<(u64, u64)>,
    used: Mutex<HashMap<String, (u64, u64)>>,
}

/// A key's share, returned when dropped.
#[derive(Debug)]
pub struct Reservation {
    ledger: Arc<Ledger>,
    owner: String,
    memory_bytes: u64,
    processes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut used = self.ledger.used.lock_or_recover();
        if let Some(u) = used.get_mut(&self.owner) {
            u.0 = u.0.saturating_sub(self.memory_bytes);
            u.1 = u.1.saturating_sub(self.processes);
            if *u == (0, 0) {
                used.remove(&self.owner);
            }
        }
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            caps: Mutex::new((u64::MAX, u64::MAX)),
            used: Mutex::new(HashMap::new()),
        }
    }
}

impl Ledger {
    /// Sets the per-key caps (memory in bytes, processes).
    pub fn set_caps(&self, memory_bytes: u64, processes: u64) {
        *self.caps.lock_or_recover() = (memory_bytes, processes);
    }

    /// Reserves a sandbox's limits for `owner`, or says which cap it would pass.
    pub fn reserve(self: &Arc<Self>, owner: &str, memory_bytes: u64, processes: u64) -> Result<Reservation, String> {
        let (mem_cap, proc_cap) = *self.caps.lock_or_recover();
        let mut used = self.used.lock_or_recover();
        let (mem, procs) = used.get(owner).copied().unwrap_or((0, 0));
        if mem.saturating_add(memory_bytes) > mem_cap {
            return Err(format!(
                "this key's sandboxes already reserve {} MiB of memory; {} MiB more would pass its maximum of {} MiB",
                mem >> 20,
                memory_bytes >> 20,
                mem_cap >> 20
            ));
        }
        if procs.saturating_add(processes) > proc_cap {
            return Err(format!(
                "this key's sandboxes already reserve {procs} processes; {processes} more would pass its maximum \
                 of {proc_cap}"
            ));
        }
        used.insert(owner.to_string(), (mem + memory_bytes, procs + processes));
        Ok(Reservation {
            ledger: self.clone(),
            owner: owner.to_string(),
            memory_bytes,
            processes,
        })
    }

    /// Memory (bytes) and processes `owner` has reserved now.
    pub fn reserved(&self, owner: &str) -> (u64, u64) {
        self.used.lock_or_recover().get(owner).copied().unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reserves_up_to_its_caps_and_gets_them_back() {
        let ledger = Arc::new(Ledger::default());
        ledger.set_caps(100 << 20, 100);
        let a = ledger.reserve("a", 60 << 20, 40).unwrap();
        let err = ledger.reserve("a", 60 << 20, 10).unwrap_err();
        assert!(err.contains("memory"), "{err}");
        let err = ledger.reserve("a", 10 << 20, 61).unwrap_err();
        assert!(err.contains("processes"), "{err}");
        let _b = ledger.reserve("b", 60 << 20, 40).unwrap();
        drop(a);
        assert_eq!(ledger.reserved("a"), (0, 0));
        ledger.reserve("a", 100 << 20, 100).unwrap();
    }

    #[test]
    fn defaults_are_sized_from_the_machine_and_parents_are_checked() {
        let d = AggregateLimits::default();
        assert!(d.memory_mb > 0 && d.key_processes <= d.processes);
        d.validate().unwrap();
        for bad in ["", "/abs", "a/../b"] {
            let l = AggregateLimits {
                cgroup_parent: bad.into(),
                ..AggregateLimits::default()
            };
            assert!(l.validate().is_err(), "{bad:?}");
        }
    }
}

//! Warm sessions: sessions started ahead of time (per language, growing with demand) so that creating one with
//! default settings only hands a ready worker to its owner.

use crate::sync::LockOrRecover;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CreateSession, Sessions, Started, MAX_EXTRA_WARM};
use crate::request::LimitOverrides;

impl Sessions {
    /// A warm session of `lang`, if the request asks for nothing but defaults and one is ready.
    pub(super) fn take_warm(&self, lang: &str, req: &CreateSession) -> Option<Started> {
        if !req.env.is_empty() || req.limits != LimitOverrides::default() {
            return None;
        }
        if !self.limits.warm.contains_key(lang) {
            return None;
        }
        let taken = {
            let mut warm = self.warm.lock_or_recover();
            let pos = warm.iter().position(|w| w.language == lang && !w.process.has_exited());
            pos.map(|i| warm.swap_remove(i))
        };
        if taken.is_none() {
            let mut extra = self.warm_extra.lock_or_recover();
            let entry = extra.entry(lang.to_string()).or_insert((0, Instant::now()));
            entry.0 = (entry.0 + 1).min(MAX_EXTRA_WARM);
            entry.1 = Instant::now();
        }
        self.wake_warm();
        taken
    }

    /// Sessions started ahead of time and waiting for an owner.
    pub fn warm_count(&self) -> usize {
        self.warm.lock_or_recover().len()
    }

    pub(super) fn wake_warm(&self) {
        let (lock, cv) = &self.warm_wake;
        *lock.lock_or_recover() = true;
        cv.notify_one();
    }

    /// Keeps [`SessionLimits::warm`] sessions started in the background (a host calls this once). Returns the
    /// thread that does it, which ends soon after [`Sessions::close_all`] (once a start in progress is over).
    pub fn start_warm(self: &Arc<Self>) -> Option<std::thread::JoinHandle<()>> {
        if self.limits.warm.values().all(|&n| n == 0) {
            return None;
        }
        let sessions = self.clone();
        std::thread::Builder::new()
            .name("runbox-warm-sessions".into())
            .spawn(move || loop {
                if sessions.closed.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                for (lang_id, &min) in &sessions.limits.warm {
                    let want = {
                        let mut extra = sessions.warm_extra.lock_or_recover();
                        let entry = extra.entry(lang_id.clone()).or_insert((0, Instant::now()));
                        if entry.0 > 0 && entry.1.elapsed() > Duration::from_secs(60) {
                            *entry = (entry.0 - 1, Instant::now());
                        }
                        min + entry.0
                    };
                    let Ok(lang) = sessions.engine.resolve(lang_id) else {
                        continue;
                    };
                    if !sessions.engine.availability(lang).available {
                        continue;
                    }
                    loop {
                        if sessions.closed.load(std::sync::atomic::Ordering::SeqCst) {
                            return;
                        }
                        let have = {
                            let mut warm = sessions.warm.lock_or_recover();
                            warm.retain(|w| !w.process.has_exited());
                            warm.iter().filter(|w| &w.language == lang_id).count()
                        };
                        if have >= want {
                            break;
                        }
                        match sessions.start(
                            lang,
                            &CreateSession {
                                language: lang_id.clone(),
                                ..Default::default()
                            },
                        ) {
                            // A session started while the server closed is ended, not kept.
                            Ok(started) if sessions.closed.load(std::sync::atomic::Ordering::SeqCst) => {
                                started.process.terminate();
                                return;
                            }
                            Ok(started) => sessions.warm.lock_or_recover().push(started),
                            Err(_) => break,
                        }
                    }
                }
                let (lock, cv) = &sessions.warm_wake;
                let mut woken = lock.lock_or_recover();
                if !*woken {
                    woken = cv
                        .wait_timeout(woken, Duration::from_secs(5))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                *woken = false;
            })
            .ok()
    }
}

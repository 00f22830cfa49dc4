//! The pre-spawned pools' metrics, by class: the one shared pool, and all per-principal pools
//! together. Never a label per principal — principals are unbounded (OAuth subjects), and a
//! principal's name in `/metrics` would tell whoever reads it who uses the node.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Which pools a figure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolClass {
    /// The pool shared by principals without provisioned environment (and stdio's `local`).
    Shared,
    /// The small pools of principals with provisioned environment, together.
    Principal,
}

impl PoolClass {
    const ALL: [PoolClass; 2] = [PoolClass::Shared, PoolClass::Principal];

    fn as_str(self) -> &'static str {
        match self {
            PoolClass::Shared => "shared",
            PoolClass::Principal => "principal",
        }
    }
}

/// Why an idle pre-spawned process was thrown away instead of handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// Its principal's environment file changed since it was started.
    EnvChanged,
    /// It died while idle.
    Died,
}

impl Discard {
    const ALL: [Discard; 2] = [Discard::EnvChanged, Discard::Died];

    fn as_str(self) -> &'static str {
        match self {
            Discard::EnvChanged => "env_changed",
            Discard::Died => "died",
        }
    }
}

/// The counters of one class.
struct ClassFigures {
    idle: AtomicU64,
    takes: AtomicU64,
    misses: AtomicU64,
    discards: [AtomicU64; Discard::ALL.len()],
}

/// Every pool figure of the process.
pub struct PoolMetrics {
    classes: [ClassFigures; PoolClass::ALL.len()],
    /// Bytes the idle processes count against the budget now.
    pub memory_bytes: AtomicU64,
    /// The budget (0: none set).
    pub memory_budget_bytes: AtomicU64,
    /// Per-principal pools that exist now.
    pub principal_pools: AtomicU64,
}

impl PoolMetrics {
    pub(super) const fn new() -> Self {
        Self {
            classes: [const {
                ClassFigures {
                    idle: AtomicU64::new(0),
                    takes: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                    discards: [const { AtomicU64::new(0) }; Discard::ALL.len()],
                }
            }; PoolClass::ALL.len()],
            memory_bytes: AtomicU64::new(0),
            memory_budget_bytes: AtomicU64::new(0),
            principal_pools: AtomicU64::new(0),
        }
    }

    fn class(&self, class: PoolClass) -> &ClassFigures {
        &self.classes[class as usize]
    }

    pub fn idle_added(&self, class: PoolClass) {
        self.class(class).idle.fetch_add(1, Ordering::Relaxed);
    }

    pub fn idle_removed(&self, class: PoolClass) {
        let _ = self
            .class(class)
            .idle
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub fn took(&self, class: PoolClass) {
        self.class(class).takes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn missed(&self, class: PoolClass) {
        self.class(class).misses.fetch_add(1, Ordering::Relaxed);
    }

    pub fn discarded(&self, class: PoolClass, why: Discard) {
        self.class(class).discards[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn render(&self, out: &mut String) {
        let families = [
            (
                "bulkhead_pool_idle",
                "gauge",
                "Pre-spawned processes ready now, by class.",
            ),
            (
                "bulkhead_pool_takes_total",
                "counter",
                "Sessions that got a pre-spawned process, by class.",
            ),
            (
                "bulkhead_pool_misses_total",
                "counter",
                "Sessions that could have used a pool of this class but found it empty (a cold start).",
            ),
        ];
        for (index, (name, kind, help)) in families.iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for class in PoolClass::ALL {
                let figures = self.class(class);
                let value = [&figures.idle, &figures.takes, &figures.misses][index];
                let _ = writeln!(
                    out,
                    "{name}{{class=\"{}\"}} {}",
                    class.as_str(),
                    value.load(Ordering::Relaxed)
                );
            }
        }
        let name = "bulkhead_pool_discards_total";
        let _ = writeln!(
            out,
            "# HELP {name} Idle pre-spawned processes thrown away instead of handed out, by class and reason.\n# TYPE {name} counter"
        );
        for class in PoolClass::ALL {
            for why in Discard::ALL {
                let _ = writeln!(
                    out,
                    "{name}{{class=\"{}\",reason=\"{}\"}} {}",
                    class.as_str(),
                    why.as_str(),
                    self.class(class).discards[why as usize].load(Ordering::Relaxed)
                );
            }
        }
        for (name, help, value) in [
            (
                "bulkhead_pool_memory_bytes",
                "Memory the idle pre-spawned processes count against the budget (PSS of each process tree, measured once it is ready).",
                &self.memory_bytes,
            ),
            (
                "bulkhead_pool_memory_budget_bytes",
                "The pools' memory budget (--pool-memory-budget; 0: none).",
                &self.memory_budget_bytes,
            ),
            (
                "bulkhead_pool_principal_pools",
                "Per-principal pools that exist now.",
                &self.principal_pools,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
    }
}

//! The CPU budget of a worker without an explicit one: workers on one machine share its CPUs.
//!
//! `WORKER_CPUS` or a cgroup CPU quota (compose `cpus:`, a Kubernetes limit) gives a worker
//! cores of its own. Without either, every worker on a machine would see all of its CPUs and
//! they would fight over them (`--scale worker=N` without `cpus:`, two `worker` processes). So
//! each heartbeat carries the machine (the kernel's boot id: the same in every container on one
//! host, unlike the hostname) and the worker's budget; each sharing worker takes
//! `floor((machine CPUs - CPUs owned by workers there) / sharing workers there)`, at least 1,
//! and re-evaluates it at every heartbeat.

use shared::job::WorkerInfo;

/// The machine this process runs on: the kernel's boot id (shared by every container on the
/// host), else the hostname.
pub fn machine_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(shared::queue::workers::hostname)
}

/// The cgroup CPU quota in CPUs, when one is set (cgroup v2 `cpu.max`, else v1 CFS quota).
pub fn cgroup_quota() -> Option<f64> {
    if let Ok(text) = std::fs::read_to_string("/sys/fs/cgroup/cpu.max") {
        return parse_cpu_max(&text);
    }
    let quota = std::fs::read_to_string("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").ok()?;
    let period = std::fs::read_to_string("/sys/fs/cgroup/cpu/cpu.cfs_period_us").ok()?;
    let (q, p) = (
        quota.trim().parse::<f64>().ok()?,
        period.trim().parse::<f64>().ok()?,
    );
    (q > 0.0 && p > 0.0).then_some(q / p)
}

/// `cpu.max` is `max 100000` (no quota) or `<quota> <period>`.
fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let quota = parts.next()?.parse::<f64>().ok()?;
    let period = parts.next()?.parse::<f64>().ok()?;
    (quota > 0.0 && period > 0.0).then_some(quota / period)
}

/// This worker's share of its machine's `machine_cpus`, given the live heartbeats (its own
/// included or not): CPUs owned by other workers on the machine are set aside, the rest is
/// divided evenly among the sharing workers (this one counted once), at least 1 each.
pub fn share(machine_cpus: usize, me: &WorkerInfo, live: &[WorkerInfo]) -> usize {
    let mut owned_elsewhere = 0usize;
    let mut sharing = 1usize; // this worker
    for w in live {
        if w.id == me.id || w.machine != me.machine || w.machine.is_empty() {
            continue;
        }
        if w.cpus_owned {
            owned_elsewhere += w.cpus as usize;
        } else {
            sharing += 1;
        }
    }
    (machine_cpus.saturating_sub(owned_elsewhere) / sharing).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str, machine: &str, cpus: u32, owned: bool) -> WorkerInfo {
        WorkerInfo {
            id: id.into(),
            machine: machine.into(),
            cpus,
            cpus_owned: owned,
            ..WorkerInfo::default()
        }
    }

    #[test]
    fn sharing_workers_divide_the_machine_and_owned_budgets_are_set_aside() {
        let me = w("a", "m1", 8, false);
        assert_eq!(share(8, &me, &[]), 8, "alone");
        assert_eq!(
            share(8, &me, std::slice::from_ref(&me)),
            8,
            "itself counts once"
        );
        let two = [me.clone(), w("b", "m1", 8, false)];
        assert_eq!(share(8, &me, &two), 4);
        let three = [me.clone(), w("b", "m1", 4, false), w("c", "m1", 4, false)];
        assert_eq!(share(8, &me, &three), 2, "floor(8 / 3)");
        // Other machines do not count; an owned budget on this one is set aside.
        let mixed = [
            w("b", "m2", 8, false),
            w("c", "m1", 3, true),
            w("d", "m1", 2, false),
        ];
        assert_eq!(share(8, &me, &mixed), 2, "(8 - 3) / 2");
        // Never below one CPU.
        let crowd: Vec<_> = (0..5)
            .map(|i| w(&format!("x{i}"), "m1", 1, false))
            .collect();
        assert_eq!(share(2, &me, &crowd), 1);
        assert_eq!(share(2, &me, &[w("big", "m1", 4, true)]), 1);
    }

    #[test]
    fn cpu_max_parses_quota_and_no_quota() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("garbage"), None);
    }
}

//! CPU time and resident memory of a process tree, read from `/proc` (Linux only).

use std::time::Instant;

use anyhow::Context;

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on
/// every Linux this runs on).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) and RSS of a set of processes at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// Sum of user + system CPU seconds.
    pub cpu_seconds: f64,
    /// Sum of `VmRSS`, in bytes.
    pub rss_bytes: u64,
}

impl Sample {
    /// Samples `pid` and all its descendants (nginx master + worker).
    pub fn of_tree(pid: u32) -> anyhow::Result<Self> {
        let mut pids = vec![pid];
        pids.extend(descendants(pid));
        Self::of(&pids)
    }

    /// Samples exactly `pids`; processes that exited meanwhile count as zero.
    pub fn of(pids: &[u32]) -> anyhow::Result<Self> {
        let at = Instant::now();
        let (mut cpu_seconds, mut rss_bytes) = (0.0, 0);
        for &pid in pids {
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                cpu_seconds += cpu_of(&stat)?;
            }
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                rss_bytes += rss_of(&status);
            }
        }
        Ok(Self {
            at,
            cpu_seconds,
            rss_bytes,
        })
    }

    /// CPU use between `earlier` and this sample, in percent of one core.
    pub fn cpu_percent_since(&self, earlier: &Self) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        100.0 * (self.cpu_seconds - earlier.cpu_seconds) / wall
    }
}

/// Fraction of all CPUs busy machine-wide between two `/proc/stat` readings.
#[derive(Debug, Clone, Copy)]
pub struct MachineCpu {
    busy: u64,
    total: u64,
}

impl MachineCpu {
    /// Reads the aggregate `cpu` line of `/proc/stat`.
    pub fn read() -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let line = stat.lines().next().context("empty /proc/stat")?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let total = fields.iter().sum();
        // idle + iowait are fields 4 and 5.
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        Ok(Self {
            busy: total - idle,
            total,
        })
    }

    /// Percent of the machine busy since `earlier` (100 = every core busy).
    pub fn busy_percent_since(&self, earlier: &Self) -> f64 {
        let total = self.total.saturating_sub(earlier.total).max(1) as f64;
        100.0 * self.busy.saturating_sub(earlier.busy) as f64 / total
    }
}

fn cpu_of(stat: &str) -> anyhow::Result<f64> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let after_name = &stat[stat.rfind(')').context("malformed stat")? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12).
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / CLOCK_TICKS_PER_SECOND)
}

fn rss_of(status: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

fn descendants(root: u32) -> Vec<u32> {
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(all.iter().filter(|&&pid| parent_of(pid) == Some(parent)));
        index += 1;
    }
    found.remove(0);
    found
}

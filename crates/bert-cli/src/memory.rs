//! How much memory a batch's outputs take, and how much this process may still allocate, so that a
//! job too big for the machine stops with an error that says so instead of an allocation abort.

/// Bytes this process can still allocate: the least of the machine's available memory, the
/// cgroup's remaining limit and the address-space limit (`ulimit -v`), where each can be read.
pub fn available() -> Option<u64> {
    [
        meminfo_available(),
        cgroup_available(),
        rlimit_as_available(),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// `MemAvailable` of /proc/meminfo.
fn meminfo_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&text, "MemAvailable:")
}

/// `memory.max - memory.current` of this process's cgroup (v2).
fn cgroup_available() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = std::path::Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?; // "max" means no limit
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// The soft address-space limit less the address space in use (`VmSize`).
fn rlimit_as_available() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    let soft: u64 = line
        .trim_start_matches("Max address space")
        .split_whitespace()
        .next()?
        .parse()
        .ok()?; // "unlimited" does not parse
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let used = kib_field(&status, "VmSize:")?;
    Some(soft.saturating_sub(used))
}

/// `Key:   1234 kB` as bytes.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// `1.5 GB`, `420 MB`, `12 kB`.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.0} kB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.0} MB", b / 1e6),
        1_000_000_000..1_000_000_000_000 => format!("{:.1} GB", b / 1e9),
        _ => format!("{:.1} TB", b / 1e12),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_sizes() {
        assert_eq!(
            kib_field(
                "MemTotal: 10 kB\nMemAvailable:   2048 kB\n",
                "MemAvailable:"
            ),
            Some(2048 * 1024)
        );
        assert_eq!(kib_field("MemTotal: 10 kB\n", "MemAvailable:"), None);
        assert_eq!(human(999), "999 B");
        assert_eq!(human(45_000_000_000), "45.0 GB");
        assert_eq!(human(608_256_000), "608 MB");
        // This machine tells at least one of them.
        assert!(available().is_some_and(|b| b > 0));
    }
}

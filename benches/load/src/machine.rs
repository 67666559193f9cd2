//! The machine, read from `/proc`: CPU time of processes and of the
//! whole machine (steal included), memory, and pinning to cores.

use std::fs;
use std::io;
use std::process::Command;

/// User plus system CPU time of process `pid` (every thread), in clock
/// ticks (`utime + stime` of `/proc/<pid>/stat`).
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count from its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("no ')' in stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    let field = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("short stat"))
    };
    Ok(field(11)? + field(12)?)
}

/// Where a process's CPU time is read from: see [`CpuClock::for_process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuClock {
    /// The sum of field 1 (time on the CPU, nanoseconds) of
    /// `/proc/<pid>/task/*/schedstat` over every thread: the scheduler's
    /// own count, in nanoseconds. With `CONFIG_PARAVIRT_TIME_ACCOUNTING`
    /// the time the hypervisor stole is not in it. A thread that exits
    /// takes its time with it: right for Envoy, whose threads live as long
    /// as it does.
    Schedstat,
    /// `utime + stime` of `/proc/<pid>/stat`, in clock ticks (10 ms at
    /// USER_HZ 100), converted to nanoseconds: when there is no schedstat
    /// (`CONFIG_SCHED_INFO` off).
    Stat,
    /// This process (`clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`):
    /// nanoseconds, every thread, those that have exited included (the
    /// harness upstreams run a thread per connection).
    ThisProcess,
}

impl CpuClock {
    /// The clock for process `pid`: this process's own clock if `pid` is
    /// this process, schedstat if the kernel has it, else `stat`. A run
    /// must keep the clock it started with: the three do not agree to the
    /// nanosecond.
    pub fn for_process(pid: u32) -> CpuClock {
        if pid == std::process::id() {
            CpuClock::ThisProcess
        } else if schedstat_ns(pid).is_ok() {
            CpuClock::Schedstat
        } else {
            CpuClock::Stat
        }
    }

    /// CPU time of `pid` so far, in nanoseconds.
    pub fn read(self, pid: u32) -> io::Result<u64> {
        match self {
            CpuClock::Schedstat => schedstat_ns(pid),
            CpuClock::Stat => Ok((cpu_ticks(pid)? as f64 * 1e9 / ticks_per_second()) as u64),
            CpuClock::ThisProcess => Ok(this_process_cpu_ns()),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            CpuClock::Schedstat => "sum of /proc/<pid>/task/*/schedstat field 1 (ns)",
            CpuClock::Stat => "utime + stime of /proc/<pid>/stat (clock ticks)",
            CpuClock::ThisProcess => "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) (ns)",
        }
    }
}

/// Time on the CPU of every live thread of `pid`, in nanoseconds: the sum
/// of the first field of `/proc/<pid>/task/*/schedstat`. An error if the
/// process has no such file (a kernel without `CONFIG_SCHED_INFO`).
pub fn schedstat_ns(pid: u32) -> io::Result<u64> {
    let mut sum = 0u64;
    let mut threads = 0;
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread may exit between the listing and the read.
        let Ok(text) = fs::read_to_string(entry?.path().join("schedstat")) else {
            continue;
        };
        let ns: u64 = text
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| io::Error::other(format!("cannot read schedstat {text:?}")))?;
        sum += ns;
        threads += 1;
    }
    if threads == 0 {
        return Err(io::Error::other(format!("no schedstat for {pid}")));
    }
    Ok(sum)
}

/// The number of threads of process `pid`.
pub fn thread_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// This process's CPU time, every thread (exited ones too), nanoseconds.
pub fn this_process_cpu_ns() -> u64 {
    // SAFETY: clock_gettime writes into the timespec we pass.
    let t = unsafe {
        let mut t: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t);
        t
    };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The machine's CPU time from `/proc/stat`, in clock ticks: busy (all
/// but idle and iowait, steal included) and stolen, of all cores and of
/// each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineTicks {
    pub busy: u64,
    pub steal: u64,
    /// `(busy, steal)` of core 0, 1, …
    pub cores: Vec<(u64, u64)>,
}

impl MachineTicks {
    pub fn read() -> MachineTicks {
        MachineTicks::parse(&fs::read_to_string("/proc/stat").unwrap_or_default())
    }

    pub fn parse(stat: &str) -> MachineTicks {
        let mut m = MachineTicks::default();
        for line in stat.lines() {
            let mut words = line.split_whitespace();
            let Some(name) = words.next().and_then(|w| w.strip_prefix("cpu")) else {
                continue;
            };
            // user nice system idle iowait irq softirq steal
            let v: Vec<u64> = words.take(8).filter_map(|w| w.parse().ok()).collect();
            let total: u64 = v.iter().sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            let pair = (total - idle, v.get(7).copied().unwrap_or(0));
            if name.is_empty() {
                (m.busy, m.steal) = pair;
            } else if let Ok(core) = name.parse::<usize>() {
                if m.cores.len() <= core {
                    m.cores.resize(core + 1, (0, 0));
                }
                m.cores[core] = pair;
            }
        }
        m
    }

    /// Ticks stolen from `core` since `earlier`.
    pub fn steal_since(&self, earlier: &MachineTicks, core: usize) -> u64 {
        let now = self.cores.get(core).map_or(0, |c| c.1);
        let then = earlier.cores.get(core).map_or(0, |c| c.1);
        now.saturating_sub(then)
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
        n as f64
    } else {
        100.0
    }
}

/// CPU time of the children this process has waited for (wrk), in seconds.
pub fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// `VmRSS` of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS"))
}

/// The wasm VMs' linear memories of process `pid`: `(size, resident)` in
/// KiB of each. V8 reserves a linear memory with its guard region as one
/// large mapping (8 GiB on Envoy 1.40) and makes the module's pages
/// readable and writable at its start, which splits off a `rw-p` mapping
/// of exactly the memory's size: the one right before each `---p` mapping
/// of at least 4 GiB. `memory.grow` would make it larger.
pub fn wasm_memories_kib(pid: u32) -> io::Result<Vec<(u64, u64)>> {
    struct Mapping {
        start: u64,
        end: u64,
        perms: String,
        size: u64,
        rss: u64,
    }
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let mut maps: Vec<Mapping> = Vec::new();
    let kib = |l: &str, key: &str| -> Option<u64> {
        l.strip_prefix(key)?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let range = words.next().unwrap_or_default();
        if let Some((a, b)) = range.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                maps.push(Mapping {
                    start,
                    end,
                    perms: words.next().unwrap_or_default().to_string(),
                    size: 0,
                    rss: 0,
                });
                continue;
            }
        }
        if let Some(m) = maps.last_mut() {
            if let Some(v) = kib(line, "Size:") {
                m.size = v;
            } else if let Some(v) = kib(line, "Rss:") {
                m.rss = v;
            }
        }
    }
    Ok(maps
        .windows(2)
        .filter(|w| {
            w[1].perms == "---p"
                && w[1].end - w[1].start >= 4 << 30
                && w[0].end == w[1].start
                && w[0].perms == "rw-p"
        })
        .map(|w| (w[0].size, w[0].rss))
        .collect())
}

/// Pins the calling thread (and so every thread and process it starts
/// afterwards) to CPU `core`.
pub fn pin_self(core: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays in it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Pins every thread of process `pid` to CPU `core` (`taskset -a -p -c`).
pub fn pin_process(pid: u32, core: usize) -> io::Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "taskset failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time() {
        assert!(cpu_ticks(std::process::id()).is_ok());
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn schedstat_counts_this_process_in_nanoseconds() {
        let pid = std::process::id();
        let Ok(before) = schedstat_ns(pid) else {
            // A kernel without CONFIG_SCHED_INFO: the stat fallback.
            assert_eq!(CpuClock::for_process(1), CpuClock::Stat);
            return;
        };
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 30 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = schedstat_ns(pid).unwrap();
        // 30 ms of spinning, give or take what the machine stole.
        assert!(after - before >= 5_000_000, "{before} → {after}");
        assert!(this_process_cpu_ns() >= 30_000_000 / 6);
        assert_eq!(CpuClock::for_process(pid), CpuClock::ThisProcess);
    }

    #[test]
    fn reads_proc_stat() {
        let stat = "cpu  10 0 10 100 5 0 0 7 0 0\n\
                    cpu0 4 0 6 50 2 0 0 5 0 0\n\
                    cpu1 6 0 4 50 3 0 0 2 0 0\n\
                    intr 1 2 3\n";
        let m = MachineTicks::parse(stat);
        assert_eq!((m.busy, m.steal), (27, 7));
        assert_eq!(m.cores, vec![(15, 5), (12, 2)]);
        let later = MachineTicks::parse(&stat.replace("0 0 5 0 0", "0 0 9 0 0"));
        assert_eq!(later.steal_since(&m, 0), 4);
        assert_eq!(later.steal_since(&m, 1), 0);
        assert_eq!(later.steal_since(&m, 7), 0);
        assert!(!MachineTicks::read().cores.is_empty());
    }
}

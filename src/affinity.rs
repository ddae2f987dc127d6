//! Thread placement: Redis's `server_cpulist`, `bio_cpulist`, `bgsave_cpulist` and
//! `aof_rewrite_cpulist`, in its (and taskset's) list syntax: `0,2,4-7`, `0-15:2`.
//!
//! Where Redis pins its main and I/O threads, its background threads and its fork children,
//! Shoal pins the matching threads as each starts (a thread's own threads inherit its CPUs):
//!
//! - `server_cpulist`: the RESP event loops and the expiry sweeper (Redis's main thread and
//!   its cron);
//! - `bio_cpulist`: the replication runtime and the AOF writer (work Redis does in the
//!   background of its command path);
//! - `bgsave_cpulist`: BGSAVE; `aof_rewrite_cpulist`: BGREWRITEAOF.
//!
//! Redis ignores a list it cannot parse; Shoal refuses it when the configuration is read, and
//! logs a list the kernel refuses (a CPU that is not there) when a thread starts.

use crate::config::Config;
use std::str::FromStr;

/// Which threads a directive places (its discriminant indexes [`Threads::DIRECTIVES`]).
#[derive(Copy, Clone, Debug)]
pub enum Threads {
    Server = 0,
    Bio = 1,
    Bgsave = 2,
    AofRewrite = 3,
}

impl Threads {
    /// Every directive, by name, in the order of the variants.
    pub const DIRECTIVES: [&'static str; 4] = [
        "server_cpulist",
        "bio_cpulist",
        "bgsave_cpulist",
        "aof_rewrite_cpulist",
    ];

    fn directive(self) -> &'static str {
        Self::DIRECTIVES[self as usize]
    }
}

/// The CPUs a list names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

/// Highest CPU number a list may name plus one (the kernel's `cpu_set_t`).
const CPUS_MAX: usize = 1024;

impl FromStr for CpuList {
    type Err = String;

    fn from_str(text: &str) -> Result<CpuList, String> {
        let invalid = || format!("Invalid CPU list '{text}'");
        let number = |s: &str| -> Result<usize, String> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            s.parse::<usize>()
                .ok()
                .filter(|&n| n < CPUS_MAX)
                .ok_or_else(invalid)
        };
        let mut cpus = Vec::new();
        for item in text.split(',') {
            let (range, stride) = match item.split_once(':') {
                Some((range, stride)) if range.contains('-') => (range, number(stride)?),
                Some(_) => return Err(invalid()),
                None => (item, 1),
            };
            let (first, last) = match range.split_once('-') {
                Some((first, last)) => (number(first)?, number(last)?),
                None => (number(range)?, number(range)?),
            };
            if stride == 0 || first > last {
                return Err(invalid());
            }
            cpus.extend((first..=last).step_by(stride));
        }
        Ok(CpuList(cpus))
    }
}

impl CpuList {
    /// Pins the calling thread to these CPUs.
    #[cfg(target_os = "linux")]
    pub fn pin_current_thread(&self) -> std::io::Result<()> {
        // SAFETY: cpu_set_t is plain bits, zeroed by CPU_ZERO; every CPU number is below
        // CPU_SETSIZE (checked when parsed); pid 0 is the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_ZERO(&mut set);
            for &cpu in &self.0 {
                libc::CPU_SET(cpu, &mut set);
            }
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    pub fn pin_current_thread(&self) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "thread placement is supported on Linux only",
        ))
    }
}

/// Pins the calling thread as `config` places `threads`. A thread inherits its creator's CPUs,
/// so when the directive is unset but another is set, the thread gets the process's own
/// (its main thread's) back; with none set, nothing is touched.
pub fn place_current_thread(config: &Config, threads: Threads) {
    let list = |directive: &str| config.other.get(directive).filter(|t| !t.is_empty());
    let text = list(threads.directive());
    let placed = match text {
        Some(text) => CpuList::from_str(text)
            .map_err(std::io::Error::other)
            .and_then(|cpus| cpus.pin_current_thread()),
        None if Threads::DIRECTIVES.iter().any(|d| list(d).is_some()) => unpin_current_thread(),
        None => return,
    };
    if let Err(e) = placed {
        tracing::warn!(
            "Cannot place {} thread on CPUs {} ({}): {e}",
            std::thread::current().name().unwrap_or("a"),
            text.map_or("of the process", String::as_str),
            threads.directive()
        );
    }
}

/// Gives the calling thread the CPUs of the process's main thread.
#[cfg(target_os = "linux")]
fn unpin_current_thread() -> std::io::Result<()> {
    // SAFETY: the kernel writes the set; getpid is the main thread's id; pid 0 is the calling
    // thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let bytes = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(libc::getpid(), bytes, &mut set) != 0
            || libc::sched_setaffinity(0, bytes, &set) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn unpin_current_thread() -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_as_redis_and_taskset_read_them() {
        let cpus = |text: &str| text.parse::<CpuList>().map(|l| l.0);
        assert_eq!(cpus("3"), Ok(vec![3]));
        assert_eq!(cpus("0,2,3"), Ok(vec![0, 2, 3]));
        assert_eq!(cpus("0,2-4"), Ok(vec![0, 2, 3, 4]));
        assert_eq!(cpus("0-7:2"), Ok(vec![0, 2, 4, 6]));
        assert_eq!(cpus("1,10-11"), Ok(vec![1, 10, 11]));
        for bad in [
            "", "a", "1,", ",1", "3-1", "0-4:0", "1:2", "0-4:", "-1", "1 ", "0-4:2:1", "1024",
        ] {
            assert!(cpus(bad).is_err(), "{bad:?} was accepted");
        }
    }
}

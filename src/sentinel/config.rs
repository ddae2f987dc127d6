//! The `sentinel ...` directives of a sentinel's configuration file: read at start-up
//! (what a previous run learned included: epochs, replicas, other sentinels), and written
//! back whenever that changes, as Redis Sentinel rewrites its file.

use super::driver::Runtime;
use super::state::{Addr, Sentinel, Settings};
use crate::engine::Engine;
use std::io::Write;

/// Builds the sentinel from its directives (each without the leading `sentinel`).
pub fn build(directives: &[Vec<String>], announce: Addr, now: u64) -> Result<Sentinel, String> {
    let my_id = directives
        .iter()
        .find(|d| d.first().is_some_and(|w| w.eq_ignore_ascii_case("myid")))
        .and_then(|d| d.get(1).cloned())
        .unwrap_or_else(random_id);
    let mut sentinel = Sentinel::new(my_id, announce);
    for directive in directives {
        apply(&mut sentinel, directive, now)
            .map_err(|e| format!("sentinel {}: {e}", directive.join(" ")))?;
    }
    Ok(sentinel)
}

fn random_id() -> String {
    (0..40)
        .map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap_or('0'))
        .collect()
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("'{text}' is not a valid number"))
}

fn apply(s: &mut Sentinel, d: &[String], now: u64) -> Result<(), String> {
    let Some((word, rest)) = d.split_first() else {
        return Err("Unrecognized sentinel configuration statement.".into());
    };
    let word = word.to_ascii_lowercase();
    let args: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (word.as_str(), args.as_slice()) {
        ("myid", [_]) => Ok(()),
        ("monitor", [name, ip, port, quorum]) => {
            let quorum: usize = number(quorum)?;
            if quorum == 0 {
                return Err("Quorum must be 1 or greater.".into());
            }
            let addr = Addr::new(*ip, number(port)?);
            match s.monitor(name, addr, Settings::with_quorum(quorum), now) {
                true => Ok(()),
                false => Err("Duplicated master name.".into()),
            }
        }
        ("current-epoch", [epoch]) => {
            s.current_epoch = number(epoch)?;
            Ok(())
        }
        ("announce-ip", [ip]) => {
            s.announce.host = ip.to_string();
            s.announce_configured.0 = Some(ip.to_string());
            Ok(())
        }
        ("announce-port", [port]) => {
            let port: u16 = number(port)?;
            if port != 0 {
                s.announce.port = port;
            }
            s.announce_configured.1 = Some(port);
            Ok(())
        }
        ("deny-scripts-reconfig" | "resolve-hostnames" | "announce-hostnames", [_]) => Ok(()),
        (option, [name, rest @ ..]) => {
            let group = s
                .groups
                .get_mut(*name)
                .ok_or_else(|| "No such master with specified name.".to_string())?;
            set_option(group, option, rest, now)
        }
        _ => Err("Unrecognized sentinel configuration statement.".into()),
    }
}

/// Whether `word` can be written into the configuration file as one argument (names and
/// values come from clients: SENTINEL MONITOR, SENTINEL SET).
pub fn is_plain_word(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'')
}

/// One group option: a `sentinel <option> <name> ...` line, or SENTINEL SET's pairs.
pub fn set_option(
    group: &mut super::state::Group,
    option: &str,
    args: &[&str],
    now: u64,
) -> Result<(), String> {
    let settings = &mut group.settings;
    match (option.to_ascii_lowercase().as_str(), args) {
        ("down-after-milliseconds", [ms]) => {
            settings.down_after_ms = positive(ms)?;
        }
        ("failover-timeout", [ms]) => settings.failover_timeout_ms = positive(ms)?,
        ("parallel-syncs", [n]) => settings.parallel_syncs = positive(n)? as usize,
        ("quorum", [n]) => settings.quorum = positive(n)? as usize,
        ("auth-pass", [pass]) if pass.is_empty() || is_plain_word(pass) => {
            settings.auth_pass = (!pass.is_empty()).then(|| pass.to_string());
        }
        ("config-epoch", [epoch]) => group.config_epoch = number(epoch)?,
        ("leader-epoch", [epoch]) => {
            let epoch = number(epoch)?;
            group.leader = Some(("*".into(), epoch));
        }
        ("known-replica" | "known-slave", [ip, port]) => {
            let addr = Addr::new(*ip, number(port)?);
            group.add_replica(addr, now);
        }
        ("known-sentinel", [ip, port, run_id]) => {
            group.add_sentinel(Addr::new(*ip, number(port)?), run_id, now);
        }
        ("notification-script" | "client-reconfig-script", _) => {
            return Err("scripts are not supported".into());
        }
        ("rename-command" | "auth-user" | "master-reboot-down-after-period", _) => {}
        _ => return Err("Unrecognized sentinel configuration statement.".into()),
    }
    Ok(())
}

/// A positive setting, at most about 30 years of milliseconds (so sums of them cannot
/// overflow).
fn positive(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if n > 0 && n < 1 << 40 => Ok(n),
        _ => Err(format!("'{text}' must be a positive number")),
    }
}

/// The directives that describe what `sentinel` knows now.
pub fn directives(s: &Sentinel) -> Vec<String> {
    let mut lines = vec![
        format!("sentinel myid {}", s.my_id),
        format!("sentinel current-epoch {}", s.current_epoch),
    ];
    if let Some(ip) = &s.announce_configured.0 {
        lines.push(format!("sentinel announce-ip {ip}"));
    }
    if let Some(port) = s.announce_configured.1 {
        lines.push(format!("sentinel announce-port {port}"));
    }
    for g in s.groups.values() {
        let (m, st) = (&g.master.addr, &g.settings);
        lines.push(format!(
            "sentinel monitor {} {} {} {}",
            g.name, m.host, m.port, st.quorum
        ));
        lines.push(format!(
            "sentinel down-after-milliseconds {} {}",
            g.name, st.down_after_ms
        ));
        lines.push(format!(
            "sentinel failover-timeout {} {}",
            g.name, st.failover_timeout_ms
        ));
        lines.push(format!(
            "sentinel parallel-syncs {} {}",
            g.name, st.parallel_syncs
        ));
        if let Some(pass) = &st.auth_pass {
            lines.push(format!("sentinel auth-pass {} {pass}", g.name));
        }
        lines.push(format!(
            "sentinel config-epoch {} {}",
            g.name, g.config_epoch
        ));
        let leader_epoch = g.leader.as_ref().map_or(0, |(_, e)| *e);
        lines.push(format!("sentinel leader-epoch {} {leader_epoch}", g.name));
        for r in g.replicas.keys() {
            lines.push(format!(
                "sentinel known-replica {} {} {}",
                g.name, r.host, r.port
            ));
        }
        for p in g.sentinels.values() {
            lines.push(format!(
                "sentinel known-sentinel {} {} {} {}",
                g.name, p.addr.host, p.addr.port, p.run_id
            ));
        }
    }
    lines
}

/// Rewrites the configuration file (if there is one): its other lines as they were, then the
/// `sentinel` directives of what is known now; replaced atomically and fsynced.
pub fn rewrite(engine: &Engine, runtime: &Runtime) -> std::io::Result<()> {
    let Some(path) = engine.config().config_file.clone() else {
        return Ok(());
    };
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut text: String = old
        .lines()
        .filter(|l| !l.trim_start().to_ascii_lowercase().starts_with("sentinel "))
        .filter(|l| !l.starts_with("# Generated by Sentinel"))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str("# Generated by Sentinel: what it learned (epochs, replicas, sentinels)\n");
    for line in directives(&runtime.state.lock()) {
        text.push_str(&line);
        text.push('\n');
    }
    let tmp = path.with_extension("tmp-sentinel");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)
}

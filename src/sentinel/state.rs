//! The Sentinel core, without I/O: what each sentinel knows of the groups it monitors, and
//! what it decides. The driver feeds it replies ([`Sentinel::handle_ping`],
//! [`Sentinel::handle_info`], [`Sentinel::handle_hello`], [`Sentinel::handle_down_reply`])
//! and ticks with the time ([`Sentinel::tick`]), answers other sentinels' questions with
//! [`Sentinel::vote`], and carries out the [`Action`]s it takes from
//! [`Sentinel::poll_actions`]. The timers and rules are Redis Sentinel's: PING every second,
//! INFO every 10 s (every second while the primary is down or failing over), hello every 2 s;
//! SDOWN after `down-after-milliseconds` without a valid reply; ODOWN once `quorum` sentinels
//! (this one included) say so; a leader elected per epoch by a majority of the sentinels
//! (and at least `quorum`); the replica chosen by priority, offset and run ID.

use std::collections::BTreeMap;
use std::fmt;

/// Milliseconds on the driver's monotonic clock.
pub type Ms = u64;

/// How often every instance is pinged.
pub const PING_PERIOD_MS: Ms = 1000;
/// How often INFO is asked (every [`PING_PERIOD_MS`] while the primary is down).
pub const INFO_PERIOD_MS: Ms = 10_000;
/// How often a hello is published to every instance.
pub const HELLO_PERIOD_MS: Ms = 2000;
/// How often the other sentinels are asked whether the primary is down.
pub const ASK_PERIOD_MS: Ms = 1000;
/// A sentinel's "it is down" counts for this long.
const DOWN_REPLY_VALID_MS: Ms = ASK_PERIOD_MS * 5;
/// How long a leader may take to be elected.
const ELECTION_TIMEOUT_MS: Ms = 10_000;
/// A replica told to follow the new primary that shows no progress for this long is
/// counted as done.
const REPLICA_RECONF_TIMEOUT_MS: Ms = 10_000;
/// The hello channel.
pub const HELLO_CHANNEL: &str = "__sentinel__:hello";

/// An instance's address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr {
    pub host: String,
    pub port: u16,
}

impl Addr {
    pub fn new(host: impl Into<String>, port: u16) -> Addr {
        Addr {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A monitored group's settings (`sentinel monitor` and `sentinel set`).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub quorum: usize,
    pub down_after_ms: Ms,
    pub failover_timeout_ms: Ms,
    pub parallel_syncs: usize,
    pub auth_pass: Option<String>,
}

impl Settings {
    /// Redis's defaults with `quorum`.
    pub fn with_quorum(quorum: usize) -> Settings {
        Settings {
            quorum,
            down_after_ms: 30_000,
            failover_timeout_ms: 180_000,
            parallel_syncs: 1,
            auth_pass: None,
        }
    }
}

/// What an instance said of itself in INFO.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InfoReport {
    pub run_id: Option<String>,
    pub is_master: bool,
    /// A replica's primary and whether its link to it is up.
    pub primary: Option<(Addr, bool)>,
    /// `master_link_down_since_seconds`, in ms.
    pub link_down_ms: Ms,
    pub priority: u32,
    pub repl_offset: u64,
    /// A primary's replicas (`slaveN:ip=..,port=..`).
    pub replicas: Vec<Addr>,
}

/// What the driver is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// PING the instance; reply with [`Sentinel::handle_ping`].
    Ping(Addr),
    /// INFO the instance; reply with [`Sentinel::handle_info`].
    Info(Addr),
    /// PUBLISH `payload` on [`HELLO_CHANNEL`] at the instance.
    Hello(Addr, String),
    /// SENTINEL IS-MASTER-DOWN-BY-ADDR at a sentinel (`run_id` "*" asks only for its view,
    /// ours asks for its vote in `epoch`); reply with [`Sentinel::handle_down_reply`].
    AskDown {
        to: Addr,
        master: String,
        ip: String,
        port: u16,
        epoch: u64,
        run_id: String,
    },
    /// REPLICAOF NO ONE.
    Promote(Addr),
    /// REPLICAOF primary.
    Follow(Addr, Addr),
}

/// One instance (a primary or a replica) as this sentinel sees it.
#[derive(Clone, Debug)]
pub struct Instance {
    pub addr: Addr,
    pub run_id: Option<String>,
    /// When a valid PING reply last came, the oldest PING waiting for one (0: none), and
    /// the last PING sent.
    pub last_ok_ping_ms: Ms,
    pub ping_sent_ms: Ms,
    last_ping_ms: Ms,
    pub last_avail_ms: Ms,
    pub sdown_since_ms: Option<Ms>,
    pub info_refresh_ms: Ms,
    pub reported_master: bool,
    pub role_reported_ms: Ms,
    pub priority: u32,
    pub repl_offset: u64,
    pub link_down_ms: Ms,
    /// A replica's primary as it reports it, and whether its link is up.
    pub primary: Option<(Addr, bool)>,
    info_sent_ms: Ms,
    hello_sent_ms: Ms,
    /// When the primary it reports last changed, and when it was last told to follow ours
    /// outside a failover.
    primary_changed_ms: Ms,
    fixed_ms: Ms,
    /// Failover bookkeeping for a replica: told to follow the new primary (when), syncing,
    /// done.
    reconf: Reconf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reconf {
    None,
    Sent(Ms),
    InProgress,
    Done,
}

impl Instance {
    fn new(addr: Addr, now: Ms) -> Instance {
        Instance {
            addr,
            run_id: None,
            last_ok_ping_ms: now,
            ping_sent_ms: 0,
            last_ping_ms: 0,
            last_avail_ms: now,
            sdown_since_ms: None,
            info_refresh_ms: 0,
            reported_master: false,
            role_reported_ms: now,
            priority: 100,
            repl_offset: 0,
            link_down_ms: 0,
            primary: None,
            info_sent_ms: 0,
            hello_sent_ms: 0,
            primary_changed_ms: now,
            fixed_ms: 0,
            reconf: Reconf::None,
        }
    }

    pub fn is_sdown(&self) -> bool {
        self.sdown_since_ms.is_some()
    }

    /// Time without a valid reply to a PING.
    fn silent_ms(&self, now: Ms) -> Ms {
        match self.ping_sent_ms {
            0 => 0,
            sent => now.saturating_sub(sent),
        }
    }
}

/// Another sentinel monitoring the same group.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: Addr,
    pub run_id: String,
    pub last_hello_ms: Ms,
    /// It said the primary is down, and when.
    pub says_down_ms: Option<Ms>,
    /// Its vote: the leader it voted for, and in which epoch.
    pub leader: Option<(String, u64)>,
    ask_sent_ms: Ms,
}

impl Peer {
    fn new(addr: Addr, run_id: &str, now: Ms) -> Peer {
        Peer {
            addr,
            run_id: run_id.to_string(),
            last_hello_ms: now,
            says_down_ms: None,
            leader: None,
            ask_sent_ms: 0,
        }
    }
}

/// The steps of a failover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Waiting to be elected leader.
    WaitStart,
    SelectReplica,
    SendPromote,
    WaitPromotion,
    ReconfReplicas,
}

impl Step {
    /// As SENTINEL MASTER and INFO show it.
    pub fn name(self) -> &'static str {
        match self {
            Step::WaitStart => "wait_start",
            Step::SelectReplica => "select_slave",
            Step::SendPromote => "send_slaveof_noone",
            Step::WaitPromotion => "wait_promotion",
            Step::ReconfReplicas => "reconf_slaves",
        }
    }
}

/// A failover in progress.
#[derive(Clone, Debug)]
pub struct Failover {
    pub step: Step,
    pub epoch: u64,
    pub step_since_ms: Ms,
    pub promoted: Option<Addr>,
}

/// One monitored group.
#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub settings: Settings,
    pub master: Instance,
    pub replicas: BTreeMap<Addr, Instance>,
    pub sentinels: BTreeMap<String, Peer>,
    pub config_epoch: u64,
    pub odown_since_ms: Option<Ms>,
    /// This sentinel's vote for the group's failover leader: who, in which epoch.
    pub leader: Option<(String, u64)>,
    pub failover: Option<Failover>,
    /// When the last failover started (or a vote for another sentinel was cast): no new
    /// one for twice the failover timeout.
    pub failover_start_ms: Ms,
}

impl Group {
    fn new(name: String, addr: Addr, settings: Settings, now: Ms) -> Group {
        Group {
            name,
            settings,
            master: Instance::new(addr, now),
            replicas: BTreeMap::new(),
            sentinels: BTreeMap::new(),
            config_epoch: 0,
            odown_since_ms: None,
            leader: None,
            failover: None,
            failover_start_ms: 0,
        }
    }

    /// Redis's "%@" for the primary: `master <name> <ip> <port>`.
    fn describe_master(&self) -> String {
        let a = &self.master.addr;
        format!("master {} {} {}", self.name, a.host, a.port)
    }

    /// "%@" for a replica: `slave <ip>:<port> <ip> <port> @ <name> <ip> <port>`.
    fn describe_replica(&self, addr: &Addr) -> String {
        let m = &self.master.addr;
        format!(
            "slave {addr} {} {} @ {} {} {}",
            addr.host, addr.port, self.name, m.host, m.port
        )
    }

    fn describe_sentinel(&self, peer: &Peer) -> String {
        let m = &self.master.addr;
        format!(
            "sentinel {} {} {} @ {} {} {}",
            peer.run_id, peer.addr.host, peer.addr.port, self.name, m.host, m.port
        )
    }

    pub fn is_odown(&self) -> bool {
        self.odown_since_ms.is_some()
    }

    /// The primary as the group's configuration now says: the promoted replica once the
    /// failover reconfigures the others (its config epoch is the failover's from then on, and
    /// the two are announced together), else the monitored primary.
    pub fn current_master(&self) -> &Addr {
        match &self.failover {
            Some(Failover {
                step: Step::ReconfReplicas,
                promoted: Some(promoted),
                ..
            }) => promoted,
            _ => &self.master.addr,
        }
    }

    /// A replica known from the configuration file.
    pub fn add_replica(&mut self, addr: Addr, now: Ms) {
        self.replicas
            .entry(addr.clone())
            .or_insert_with(|| Instance::new(addr, now));
    }

    /// A sentinel known from the configuration file.
    pub fn add_sentinel(&mut self, addr: Addr, run_id: &str, now: Ms) {
        self.sentinels
            .insert(run_id.to_string(), Peer::new(addr, run_id, now));
    }

    fn instance_mut(&mut self, addr: &Addr) -> Option<&mut Instance> {
        if self.master.addr == *addr {
            return Some(&mut self.master);
        }
        self.replicas.get_mut(addr)
    }

    /// Redis's replica choice: not down, recently seen and informed, priority not 0, not
    /// cut from the primary for much longer than it has been down; then the lowest
    /// priority, the highest offset, the smallest run ID.
    pub fn select_replica(&self, now: Ms) -> Option<&Instance> {
        let master_down_ms = self
            .master
            .sdown_since_ms
            .map_or(0, |since| now.saturating_sub(since));
        let link_down_max_ms =
            master_down_ms.saturating_add(self.settings.down_after_ms.saturating_mul(10));
        let info_valid_ms = match self.master.is_sdown() {
            true => PING_PERIOD_MS * 5,
            false => INFO_PERIOD_MS * 3,
        };
        let mut fit: Vec<&Instance> = self
            .replicas
            .values()
            .filter(|r| !r.is_sdown() && r.priority != 0)
            .filter(|r| now.saturating_sub(r.last_avail_ms) <= PING_PERIOD_MS * 5)
            .filter(|r| now.saturating_sub(r.info_refresh_ms) <= info_valid_ms)
            .filter(|r| r.link_down_ms <= link_down_max_ms)
            .collect();
        fit.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then(b.repl_offset.cmp(&a.repl_offset))
                .then_with(|| match (&a.run_id, &b.run_id) {
                    (Some(x), Some(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                })
        });
        fit.first().copied()
    }
}

/// Why SENTINEL FAILOVER was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailoverRefusal {
    NoSuchMaster,
    InProgress,
    NoGoodReplica,
}

/// Everything one sentinel knows and decides.
pub struct Sentinel {
    pub my_id: String,
    pub current_epoch: u64,
    pub groups: BTreeMap<String, Group>,
    actions: Vec<Action>,
    events: Vec<(&'static str, String)>,
    /// Where the other sentinels reach this one (announced in hellos).
    pub announce: Addr,
    /// `announce-ip` and `announce-port` as configured (kept when the file is rewritten).
    pub announce_configured: (Option<String>, Option<u16>),
    /// The configuration changed (to save: epochs, votes, a new primary, peers).
    dirty: bool,
    /// Jitter for failover starts, seeded from the run ID (so a simulation replays exactly).
    rng: fastrand::Rng,
}

impl Sentinel {
    pub fn new(my_id: String, announce: Addr) -> Sentinel {
        Sentinel {
            current_epoch: 0,
            groups: BTreeMap::new(),
            actions: Vec::new(),
            events: Vec::new(),
            rng: fastrand::Rng::with_seed(
                my_id
                    .bytes()
                    .fold(0u64, |h, b| h.wrapping_mul(0x100_0000_01b3) ^ u64::from(b)),
            ),
            my_id,
            announce,
            announce_configured: (None, None),
            dirty: false,
        }
    }

    /// SENTINEL MONITOR (and the `sentinel monitor` directive); false if the name is taken.
    pub fn monitor(&mut self, name: &str, addr: Addr, settings: Settings, now: Ms) -> bool {
        if self.groups.contains_key(name) {
            return false;
        }
        let group = Group::new(name.to_string(), addr, settings, now);
        self.event(
            "+monitor",
            format!(
                "{} quorum {}",
                group.describe_master(),
                group.settings.quorum
            ),
        );
        self.groups.insert(name.to_string(), group);
        self.dirty = true;
        true
    }

    /// SENTINEL REMOVE.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(group) = self.groups.remove(name) else {
            return false;
        };
        self.event("-monitor", group.describe_master());
        self.dirty = true;
        true
    }

    /// SENTINEL RESET: forgets the replicas, sentinels and failover state of the groups
    /// whose name matches `pattern`; how many.
    pub fn reset(&mut self, pattern: &[u8], now: Ms) -> usize {
        let names: Vec<String> = self
            .groups
            .keys()
            .filter(|n| crate::glob::matches(pattern, n.as_bytes(), false))
            .cloned()
            .collect();
        for name in &names {
            if let Some(group) = self.groups.get_mut(name) {
                let fresh = Group::new(
                    name.clone(),
                    group.master.addr.clone(),
                    group.settings.clone(),
                    now,
                );
                let epoch = group.config_epoch;
                *group = fresh;
                group.config_epoch = epoch;
                let text = group.describe_master();
                self.event("+reset-master", text);
            }
        }
        self.dirty |= !names.is_empty();
        names.len()
    }

    /// The configuration changed (SENTINEL SET): to be saved.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Whether the configuration changed since the last call (to be saved).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// What to do now, taken.
    pub fn poll_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Events (`+sdown`, `+switch-master`, ...) with their text, taken: published on the
    /// channel of their name and logged.
    pub fn poll_events(&mut self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.events)
    }

    fn event(&mut self, kind: &'static str, text: String) {
        self.events.push((kind, text));
    }

    /// The periodic step.
    pub fn tick(&mut self, now: Ms) {
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            self.tick_group(&name, now);
        }
    }

    fn tick_group(&mut self, name: &str, now: Ms) {
        let Some(mut group) = self.groups.remove(name) else {
            return;
        };
        self.schedule(&mut group, now);
        self.check_sdown(&mut group, now);
        self.check_odown(&mut group, now);
        self.ask_peers(&mut group, now);
        self.start_failover_if_needed(&mut group, now);
        self.step_failover(&mut group, now);
        self.fix_replicas(&mut group, now);
        self.groups.insert(name.to_string(), group);
    }

    /// PINGs, INFOs and hellos that are due.
    fn schedule(&mut self, group: &mut Group, now: Ms) {
        let fast_info = group.master.is_sdown() || group.failover.is_some();
        let info_period = if fast_info {
            PING_PERIOD_MS
        } else {
            INFO_PERIOD_MS
        };
        let hello = self.hello_payload(group);
        let instances = std::iter::once(&mut group.master).chain(group.replicas.values_mut());
        for inst in instances {
            // Pings go on while none is answered (the instance may come back); the oldest
            // unanswered one measures the silence.
            if now.saturating_sub(inst.last_ok_ping_ms) >= PING_PERIOD_MS
                && now.saturating_sub(inst.last_ping_ms) >= PING_PERIOD_MS / 2
            {
                if inst.ping_sent_ms == 0 {
                    inst.ping_sent_ms = now;
                }
                inst.last_ping_ms = now;
                self.actions.push(Action::Ping(inst.addr.clone()));
            }
            if inst.info_sent_ms == 0 || now.saturating_sub(inst.info_sent_ms) >= info_period {
                inst.info_sent_ms = now;
                self.actions.push(Action::Info(inst.addr.clone()));
            }
            if now.saturating_sub(inst.hello_sent_ms) >= HELLO_PERIOD_MS {
                inst.hello_sent_ms = now;
                self.actions
                    .push(Action::Hello(inst.addr.clone(), hello.clone()));
            }
        }
    }

    /// `ip,port,runid,current_epoch,name,master_ip,master_port,config_epoch`.
    fn hello_payload(&self, group: &Group) -> String {
        let m = group.current_master();
        format!(
            "{},{},{},{},{},{},{},{}",
            self.announce.host,
            self.announce.port,
            self.my_id,
            self.current_epoch,
            group.name,
            m.host,
            m.port,
            group.config_epoch
        )
    }

    fn check_sdown(&mut self, group: &mut Group, now: Ms) {
        let down_after = group.settings.down_after_ms;
        let mut changes = Vec::new();
        let role_grace = down_after.saturating_add(INFO_PERIOD_MS * 2);
        let master_says_replica = !group.master.reported_master
            && group.master.info_refresh_ms > 0
            && now.saturating_sub(group.master.role_reported_ms) > role_grace;
        let instances = std::iter::once((true, &mut group.master))
            .chain(group.replicas.values_mut().map(|r| (false, r)));
        for (is_master, inst) in instances {
            let down = inst.silent_ms(now) > down_after || (is_master && master_says_replica);
            match (down, inst.sdown_since_ms) {
                (true, None) => {
                    inst.sdown_since_ms = Some(now);
                    changes.push(("+sdown", is_master, inst.addr.clone()));
                }
                (false, Some(_)) => {
                    inst.sdown_since_ms = None;
                    changes.push(("-sdown", is_master, inst.addr.clone()));
                }
                _ => {}
            }
        }
        for (kind, is_master, addr) in changes {
            let text = match is_master {
                true => group.describe_master(),
                false => group.describe_replica(&addr),
            };
            self.event(kind, text);
        }
    }

    fn check_odown(&mut self, group: &mut Group, now: Ms) {
        let agreeing = 1 + group
            .sentinels
            .values()
            .filter(|p| {
                p.says_down_ms
                    .is_some_and(|t| now.saturating_sub(t) <= DOWN_REPLY_VALID_MS)
            })
            .count();
        let odown = group.master.is_sdown() && agreeing >= group.settings.quorum;
        match (odown, group.odown_since_ms) {
            (true, None) => {
                group.odown_since_ms = Some(now);
                let text = format!(
                    "{} #quorum {agreeing}/{}",
                    group.describe_master(),
                    group.settings.quorum
                );
                self.event("+odown", text);
            }
            (false, Some(_)) => {
                group.odown_since_ms = None;
                self.event("-odown", group.describe_master());
            }
            _ => {}
        }
    }

    /// While the primary is down, asks the other sentinels every second whether they agree,
    /// and for their vote once a failover started.
    fn ask_peers(&mut self, group: &mut Group, now: Ms) {
        if !group.master.is_sdown() {
            return;
        }
        let run_id = match &group.failover {
            Some(f) if f.step == Step::WaitStart => self.my_id.clone(),
            _ => "*".to_string(),
        };
        for peer in group.sentinels.values_mut() {
            if peer
                .says_down_ms
                .is_some_and(|t| now.saturating_sub(t) > DOWN_REPLY_VALID_MS)
            {
                peer.says_down_ms = None;
                peer.leader = None;
            }
            if now.saturating_sub(peer.ask_sent_ms) < ASK_PERIOD_MS {
                continue;
            }
            peer.ask_sent_ms = now;
            self.actions.push(Action::AskDown {
                to: peer.addr.clone(),
                master: group.name.clone(),
                ip: group.master.addr.host.clone(),
                port: group.master.addr.port,
                epoch: self.current_epoch,
                run_id: run_id.clone(),
            });
        }
    }

    fn start_failover_if_needed(&mut self, group: &mut Group, now: Ms) {
        if !group.is_odown() || group.failover.is_some() {
            return;
        }
        if now.saturating_sub(group.failover_start_ms) < group.settings.failover_timeout_ms * 2
            && group.failover_start_ms != 0
        {
            return;
        }
        self.begin_failover(group, now, false);
    }

    /// Starts a failover in a new epoch; a `forced` one (SENTINEL FAILOVER) needs no
    /// election.
    fn begin_failover(&mut self, group: &mut Group, now: Ms, forced: bool) {
        self.current_epoch = self.current_epoch.saturating_add(1);
        for replica in group.replicas.values_mut() {
            replica.reconf = Reconf::None;
        }
        self.dirty = true;
        let epoch = self.current_epoch;
        self.event("+new-epoch", epoch.to_string());
        self.event("+try-failover", group.describe_master());
        group.failover = Some(Failover {
            step: if forced {
                Step::SelectReplica
            } else {
                Step::WaitStart
            },
            epoch,
            step_since_ms: now,
            promoted: None,
        });
        // Jitter keeps sentinels from starting together (Redis adds up to a second).
        group.failover_start_ms = now + self.rng.u64(..1000);
        for peer in group.sentinels.values_mut() {
            peer.ask_sent_ms = 0;
        }
    }

    fn step_failover(&mut self, group: &mut Group, now: Ms) {
        let Some(failover) = group.failover.clone() else {
            return;
        };
        match failover.step {
            Step::WaitStart => self.wait_start(group, failover, now),
            Step::SelectReplica => self.select(group, failover, now),
            Step::SendPromote => self.send_promote(group, failover, now),
            Step::WaitPromotion => {
                if now.saturating_sub(failover.step_since_ms) > group.settings.failover_timeout_ms {
                    self.abort_failover(group, "-failover-abort-slave-timeout");
                }
            }
            Step::ReconfReplicas => self.reconf_replicas(group, failover, now),
        }
    }

    fn set_step(group: &mut Group, step: Step, now: Ms) {
        if let Some(f) = group.failover.as_mut() {
            f.step = step;
            f.step_since_ms = now;
        }
    }

    fn wait_start(&mut self, group: &mut Group, failover: Failover, now: Ms) {
        let leader = self.leader_of(group, failover.epoch, now);
        if leader.as_deref() == Some(self.my_id.as_str()) {
            self.event(
                "+elected-leader",
                format!("{} #epoch {}", group.describe_master(), failover.epoch),
            );
            self.event("+failover-state-select-slave", group.describe_master());
            Self::set_step(group, Step::SelectReplica, now);
            return;
        }
        let timeout = ELECTION_TIMEOUT_MS.min(group.settings.failover_timeout_ms);
        if now.saturating_sub(failover.step_since_ms) > timeout {
            self.abort_failover(group, "-failover-abort-not-elected");
        }
    }

    fn select(&mut self, group: &mut Group, _failover: Failover, now: Ms) {
        let Some(chosen) = group.select_replica(now).map(|r| r.addr.clone()) else {
            self.abort_failover(group, "-failover-abort-no-good-slave");
            return;
        };
        let text = group.describe_replica(&chosen);
        self.event("+selected-slave", text.clone());
        self.event("+failover-state-send-slaveof-noone", text);
        if let Some(f) = group.failover.as_mut() {
            f.promoted = Some(chosen);
        }
        Self::set_step(group, Step::SendPromote, now);
    }

    fn send_promote(&mut self, group: &mut Group, failover: Failover, now: Ms) {
        let Some(promoted) = failover.promoted else {
            return;
        };
        self.actions.push(Action::Promote(promoted.clone()));
        let text = group.describe_replica(&promoted);
        self.event("+failover-state-wait-promotion", text);
        Self::set_step(group, Step::WaitPromotion, now);
    }

    /// Tells the replicas to follow the promoted one, `parallel-syncs` at a time; once all
    /// are done (or the failover timeout passed), the group's primary is the promoted one.
    fn reconf_replicas(&mut self, group: &mut Group, failover: Failover, now: Ms) {
        let Some(promoted) = failover.promoted.clone() else {
            return;
        };
        let timed_out =
            now.saturating_sub(failover.step_since_ms) > group.settings.failover_timeout_ms;
        let mut in_flight = 0;
        for replica in group.replicas.values_mut() {
            if let Reconf::Sent(at) = replica.reconf {
                if now.saturating_sub(at) > REPLICA_RECONF_TIMEOUT_MS {
                    replica.reconf = Reconf::Done;
                }
            }
            if matches!(replica.reconf, Reconf::Sent(_) | Reconf::InProgress) {
                in_flight += 1;
            }
        }
        let mut sent = Vec::new();
        for replica in group.replicas.values_mut() {
            if in_flight >= group.settings.parallel_syncs || timed_out {
                break;
            }
            if replica.addr == promoted || replica.reconf != Reconf::None || replica.is_sdown() {
                continue;
            }
            replica.reconf = Reconf::Sent(now);
            in_flight += 1;
            sent.push(replica.addr.clone());
        }
        for addr in sent {
            self.actions
                .push(Action::Follow(addr.clone(), promoted.clone()));
            let text = group.describe_replica(&addr);
            self.event("+slave-reconf-sent", text);
        }
        let all_done = group
            .replicas
            .values()
            .all(|r| r.addr == promoted || r.reconf == Reconf::Done || r.is_sdown());
        if all_done || timed_out {
            self.event("+failover-end", group.describe_master());
            self.switch_master(group, promoted, now);
        }
    }

    /// The group's primary is now `promoted`: the old primary and the other replicas are
    /// its replicas (the old one is told to follow when it returns).
    fn switch_master(&mut self, group: &mut Group, promoted: Addr, now: Ms) {
        let old = group.master.addr.clone();
        self.event(
            "+switch-master",
            format!(
                "{} {} {} {} {}",
                group.name, old.host, old.port, promoted.host, promoted.port
            ),
        );
        let mut replicas: Vec<Addr> = group
            .replicas
            .keys()
            .filter(|a| **a != promoted)
            .cloned()
            .collect();
        replicas.push(old);
        let mut master = group
            .replicas
            .remove(&promoted)
            .unwrap_or_else(|| Instance::new(promoted.clone(), now));
        master.sdown_since_ms = None;
        master.reconf = Reconf::None;
        group.master = master;
        group.replicas = replicas
            .into_iter()
            .map(|a| (a.clone(), Instance::new(a, now)))
            .collect();
        group.failover = None;
        group.odown_since_ms = None;
        for peer in group.sentinels.values_mut() {
            peer.says_down_ms = None;
            peer.leader = None;
        }
        self.dirty = true;
    }

    fn abort_failover(&mut self, group: &mut Group, why: &'static str) {
        self.event(why, group.describe_master());
        group.failover = None;
        for replica in group.replicas.values_mut() {
            replica.reconf = Reconf::None;
        }
    }

    /// Reconfigures, outside failovers, an instance that does not follow the group's
    /// primary: a replica reporting to be a primary (the old primary coming back) or
    /// following another one, once its INFO has said so for a while.
    fn fix_replicas(&mut self, group: &mut Group, now: Ms) {
        if group.failover.is_some() || group.master.is_sdown() {
            return;
        }
        // Only a primary that looks sane (says it is one, recently) is worth following.
        let sane = group.master.reported_master
            && now.saturating_sub(group.master.info_refresh_ms) < INFO_PERIOD_MS * 2;
        if !sane {
            return;
        }
        let master = group.master.addr.clone();
        let patience_ms = group.settings.failover_timeout_ms;
        let mut fixes = Vec::new();
        for replica in group.replicas.values_mut() {
            if replica.is_sdown() || replica.info_refresh_ms == 0 {
                continue;
            }
            if now.saturating_sub(replica.fixed_ms) < INFO_PERIOD_MS * 2 && replica.fixed_ms != 0 {
                continue;
            }
            // Redis's waits: a new primary role is believed after a few hellos' time; a
            // replica of another primary may be mid-failover elsewhere (another sentinel's
            // hello may not have arrived yet), so it is left alone for the failover timeout.
            let kind = match &replica.primary {
                None if replica.reported_master => {
                    let settled =
                        now.saturating_sub(replica.role_reported_ms) > HELLO_PERIOD_MS * 4;
                    settled.then_some("+convert-to-slave")
                }
                Some((p, _)) if *p != master => {
                    let settled = now.saturating_sub(replica.primary_changed_ms) > patience_ms;
                    settled.then_some("+fix-slave-config")
                }
                _ => None,
            };
            if let Some(kind) = kind {
                replica.fixed_ms = now;
                fixes.push((kind, replica.addr.clone()));
            }
        }
        for (kind, addr) in fixes {
            self.actions
                .push(Action::Follow(addr.clone(), master.clone()));
            let text = group.describe_replica(&addr);
            self.event(kind, text);
        }
    }

    /// The leader of `epoch` by the votes known, after casting this sentinel's vote (for the
    /// most voted, or itself): it needs a majority of the sentinels and at least `quorum`.
    fn leader_of(&mut self, group: &mut Group, epoch: u64, now: Ms) -> Option<String> {
        let voters = group.sentinels.len() + 1;
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for peer in group.sentinels.values() {
            if let Some((leader, e)) = &peer.leader {
                if *e == self.current_epoch {
                    *counts.entry(leader.clone()).or_default() += 1;
                }
            }
        }
        let most = counts
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(id, _)| id.clone());
        let candidate = most.unwrap_or_else(|| self.my_id.clone());
        let (my_vote, vote_epoch) = self.vote_in(group, epoch, &candidate, now);
        if let Some(vote) = my_vote.filter(|_| vote_epoch == epoch) {
            *counts.entry(vote).or_default() += 1;
        }
        let (winner, votes) = counts.into_iter().max_by_key(|(_, n)| *n)?;
        (votes > voters / 2 && votes >= group.settings.quorum).then_some(winner)
    }

    /// Casts (or keeps) this sentinel's vote for the group in `epoch`: at most one leader
    /// per epoch. Its vote and the epoch of that vote.
    fn vote_in(
        &mut self,
        group: &mut Group,
        epoch: u64,
        candidate: &str,
        now: Ms,
    ) -> (Option<String>, u64) {
        if epoch > self.current_epoch {
            self.current_epoch = epoch;
            self.dirty = true;
            self.event("+new-epoch", epoch.to_string());
        }
        let voted_epoch = group.leader.as_ref().map_or(0, |(_, e)| *e);
        if voted_epoch < epoch && self.current_epoch <= epoch {
            group.leader = Some((candidate.to_string(), self.current_epoch));
            self.dirty = true;
            let text = format!(
                "{} {candidate} {}",
                group.describe_master(),
                self.current_epoch
            );
            self.event("+vote-for-leader", text);
            if candidate != self.my_id {
                // Not us: no failover of our own for a while.
                group.failover_start_ms = now.max(1) + self.rng.u64(..1000);
            }
        }
        match &group.leader {
            Some((leader, e)) => (Some(leader.clone()), *e),
            None => (None, 0),
        }
    }

    /// SENTINEL IS-MASTER-DOWN-BY-ADDR from another sentinel: whether this one sees the
    /// primary at `addr` down, and, when `run_id` is not "*", its vote in `epoch` (cast now
    /// if not cast yet in that epoch): (down, leader or "*", leader epoch).
    pub fn vote(&mut self, addr: &Addr, epoch: u64, run_id: &str, now: Ms) -> (bool, String, u64) {
        let Some(name) = self
            .groups
            .values()
            .find(|g| g.master.addr == *addr)
            .map(|g| g.name.clone())
        else {
            return (false, "*".into(), 0);
        };
        let Some(mut group) = self.groups.remove(&name) else {
            return (false, "*".into(), 0);
        };
        let down = group.master.is_sdown();
        let (leader, leader_epoch) = match run_id {
            "*" => (None, 0),
            // An epoch this far out could only come from a broken or hostile peer.
            _ if epoch >= u64::MAX / 2 => (None, 0),
            candidate => self.vote_in(&mut group, epoch, candidate, now),
        };
        self.groups.insert(name, group);
        (down, leader.unwrap_or_else(|| "*".into()), leader_epoch)
    }

    /// A PING reply from `addr` (`valid`: PONG, LOADING or MASTERDOWN; an error otherwise).
    pub fn handle_ping(&mut self, addr: &Addr, valid: bool, now: Ms) {
        for group in self.groups.values_mut() {
            if let Some(inst) = group.instance_mut(addr) {
                inst.last_avail_ms = now;
                if valid {
                    inst.last_ok_ping_ms = now;
                    inst.ping_sent_ms = 0;
                }
            }
        }
    }

    /// An INFO reply from `addr`.
    pub fn handle_info(&mut self, addr: &Addr, info: InfoReport, now: Ms) {
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let Some(mut group) = self.groups.remove(&name) else {
                continue;
            };
            self.absorb_info(&mut group, addr, &info, now);
            self.groups.insert(name, group);
        }
    }

    fn absorb_info(&mut self, group: &mut Group, addr: &Addr, info: &InfoReport, now: Ms) {
        let is_master_addr = group.master.addr == *addr;
        let Some(inst) = group.instance_mut(addr) else {
            return;
        };
        if info.run_id.is_some() && inst.run_id != info.run_id {
            inst.run_id = info.run_id.clone();
        }
        inst.last_avail_ms = now;
        inst.info_refresh_ms = now;
        if inst.reported_master != info.is_master {
            inst.reported_master = info.is_master;
            inst.role_reported_ms = now;
        }
        inst.priority = info.priority;
        inst.repl_offset = info.repl_offset;
        inst.link_down_ms = info.link_down_ms;
        let primary_of = |p: &Option<(Addr, bool)>| p.as_ref().map(|(a, _)| a.clone());
        if primary_of(&inst.primary) != primary_of(&info.primary) {
            inst.primary_changed_ms = now;
        }
        inst.primary = info.primary.clone();
        if is_master_addr && info.is_master {
            let known: Vec<Addr> = info
                .replicas
                .iter()
                .filter(|a| !group.replicas.contains_key(*a))
                .cloned()
                .collect();
            for replica in known {
                let text = group.describe_replica(&replica);
                group
                    .replicas
                    .insert(replica.clone(), Instance::new(replica, now));
                self.event("+slave", text);
                self.dirty = true;
            }
        }
        self.track_failover(group, addr, info, now);
    }

    /// What an INFO tells the failover in progress: the promoted replica became a primary;
    /// a replica told to follow it is syncing, or done.
    fn track_failover(&mut self, group: &mut Group, addr: &Addr, info: &InfoReport, now: Ms) {
        let Some(failover) = group.failover.clone() else {
            return;
        };
        let Some(promoted) = failover.promoted.clone() else {
            return;
        };
        if failover.step == Step::WaitPromotion && *addr == promoted && info.is_master {
            group.config_epoch = failover.epoch;
            self.dirty = true;
            let text = group.describe_replica(&promoted);
            self.event("+promoted-slave", text.clone());
            self.event("+failover-state-reconf-slaves", text);
            Self::set_step(group, Step::ReconfReplicas, now);
            return;
        }
        if failover.step != Step::ReconfReplicas {
            return;
        }
        let Some(replica) = group.replicas.get_mut(addr) else {
            return;
        };
        let follows = info.primary.as_ref().is_some_and(|(p, _)| *p == promoted);
        let linked = info.primary.as_ref().is_some_and(|(_, up)| *up);
        let before = replica.reconf;
        replica.reconf = match (replica.reconf, follows, linked) {
            (Reconf::Sent(_), true, false) => Reconf::InProgress,
            (Reconf::Sent(_) | Reconf::InProgress, true, true) => Reconf::Done,
            (state, _, _) => state,
        };
        let kind = match (before, replica.reconf) {
            (Reconf::Sent(_), Reconf::InProgress) => Some("+slave-reconf-inprog"),
            (_, Reconf::Done) if before != Reconf::Done => Some("+slave-reconf-done"),
            _ => None,
        };
        if let Some(kind) = kind {
            let text = group.describe_replica(addr);
            self.event(kind, text);
        }
    }

    /// A hello seen on an instance's hello channel:
    /// `ip,port,runid,current_epoch,name,master_ip,master_port,config_epoch`.
    pub fn handle_hello(&mut self, payload: &str, now: Ms) {
        let f: Vec<&str> = payload.split(',').collect();
        let [ip, port, run_id, epoch, name, m_ip, m_port, m_epoch] = f[..] else {
            return;
        };
        let (Ok(port), Ok(epoch), Ok(m_port), Ok(m_epoch)) = (
            port.parse::<u16>(),
            epoch.parse::<u64>(),
            m_port.parse::<u16>(),
            m_epoch.parse::<u64>(),
        ) else {
            return;
        };
        // Anyone who can PUBLISH on an instance can send a hello: take only well-formed ones
        // (what is learned ends up in the configuration file).
        let well_formed = run_id.len() == 40
            && run_id.bytes().all(|b| b.is_ascii_hexdigit())
            && ip.parse::<std::net::IpAddr>().is_ok()
            && m_ip.parse::<std::net::IpAddr>().is_ok()
            && epoch < u64::MAX / 2
            && m_epoch < u64::MAX / 2;
        if run_id == self.my_id || !well_formed {
            return;
        }
        if epoch > self.current_epoch {
            self.current_epoch = epoch;
            self.dirty = true;
            self.event("+new-epoch", epoch.to_string());
        }
        let Some(mut group) = self.groups.remove(name) else {
            return;
        };
        let addr = Addr::new(ip, port);
        self.learn_peer(&mut group, run_id, addr, now);
        // A newer configuration of the group: another sentinel failed it over.
        let announced = Addr::new(m_ip, m_port);
        if m_epoch > group.config_epoch && announced != group.master.addr {
            self.event(
                "+config-update-from",
                format!(
                    "sentinel {run_id} {ip} {port} @ {} {} {}",
                    group.name, group.master.addr.host, group.master.addr.port
                ),
            );
            group.failover = None;
            self.switch_master(&mut group, announced, now);
            group.config_epoch = m_epoch;
        }
        self.groups.insert(name.to_string(), group);
    }

    /// Adds or refreshes a sentinel; one at the same address with another run ID (it
    /// restarted) is replaced.
    fn learn_peer(&mut self, group: &mut Group, run_id: &str, addr: Addr, now: Ms) {
        if let Some(peer) = group.sentinels.get_mut(run_id) {
            peer.last_hello_ms = now;
            peer.addr = addr;
            return;
        }
        let stale: Vec<String> = group
            .sentinels
            .values()
            .filter(|p| p.addr == addr)
            .map(|p| p.run_id.clone())
            .collect();
        for id in stale {
            if let Some(peer) = group.sentinels.remove(&id) {
                let text = group.describe_sentinel(&peer);
                self.event("-dup-sentinel", text);
            }
        }
        let peer = Peer::new(addr, run_id, now);
        let text = group.describe_sentinel(&peer);
        group.sentinels.insert(run_id.to_string(), peer);
        self.event("+sentinel", text);
        self.dirty = true;
    }

    /// A sentinel's answer to IS-MASTER-DOWN-BY-ADDR about group `name`.
    pub fn handle_down_reply(
        &mut self,
        name: &str,
        from: &Addr,
        down: bool,
        leader: &str,
        leader_epoch: u64,
        now: Ms,
    ) {
        let Some(group) = self.groups.get_mut(name) else {
            return;
        };
        let Some(peer) = group.sentinels.values_mut().find(|p| p.addr == *from) else {
            return;
        };
        peer.says_down_ms = down.then_some(now);
        if leader != "*" {
            peer.leader = Some((leader.to_string(), leader_epoch));
        }
    }

    /// SENTINEL FAILOVER: fails the group over now, without asking the others.
    pub fn force_failover(&mut self, name: &str, now: Ms) -> Result<(), FailoverRefusal> {
        let mut group = self
            .groups
            .remove(name)
            .ok_or(FailoverRefusal::NoSuchMaster)?;
        let refusal = if group.failover.is_some() {
            Some(FailoverRefusal::InProgress)
        } else if group.select_replica(now).is_none() {
            Some(FailoverRefusal::NoGoodReplica)
        } else {
            None
        };
        if refusal.is_none() {
            self.begin_failover(&mut group, now, true);
        }
        self.groups.insert(name.to_string(), group);
        refusal.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// What a simulated instance is.
    #[derive(Clone)]
    struct Node {
        primary: Option<Addr>,
        offset: u64,
        priority: u32,
    }

    /// Three sentinels watching a primary and two replicas, all in memory: actions are
    /// carried out at once, a down instance answers nothing.
    struct World {
        sentinels: Vec<Sentinel>,
        nodes: HashMap<Addr, Node>,
        down: HashSet<Addr>,
        /// Sentinel i cannot reach this instance.
        cut: HashSet<(usize, Addr)>,
        now: Ms,
        events: Vec<(usize, &'static str, String)>,
        /// The instance promoted in each epoch (at most one, checked as they happen).
        promotions: HashMap<u64, Addr>,
    }

    fn addr(port: u16) -> Addr {
        Addr::new("10.0.0.1", port)
    }

    fn settings() -> Settings {
        Settings {
            down_after_ms: 5000,
            failover_timeout_ms: 60_000,
            ..Settings::with_quorum(2)
        }
    }

    impl World {
        fn new() -> World {
            let mut nodes = HashMap::new();
            nodes.insert(
                addr(1),
                Node {
                    primary: None,
                    offset: 100,
                    priority: 100,
                },
            );
            nodes.insert(
                addr(2),
                Node {
                    primary: Some(addr(1)),
                    offset: 90,
                    priority: 100,
                },
            );
            nodes.insert(
                addr(3),
                Node {
                    primary: Some(addr(1)),
                    offset: 95,
                    priority: 100,
                },
            );
            let sentinels = (0..3)
                .map(|i| {
                    let mut s =
                        Sentinel::new(format!("{:040}", i), Addr::new("10.0.0.9", 26379 + i));
                    assert!(s.monitor("mymaster", addr(1), settings(), 0));
                    s
                })
                .collect();
            World {
                sentinels,
                nodes,
                down: HashSet::new(),
                cut: HashSet::new(),
                now: 0,
                events: Vec::new(),
                promotions: HashMap::new(),
            }
        }

        fn report(&self, a: &Addr) -> InfoReport {
            let node = &self.nodes[a];
            InfoReport {
                run_id: Some(format!("run-{}", a.port)),
                is_master: node.primary.is_none(),
                primary: node
                    .primary
                    .clone()
                    .map(|p| (p.clone(), !self.down.contains(&p))),
                link_down_ms: 0,
                priority: node.priority,
                repl_offset: node.offset,
                replicas: self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.primary.as_ref() == Some(a))
                    .map(|(r, _)| r.clone())
                    .collect(),
            }
        }

        fn run_for(&mut self, ms: Ms) {
            let end = self.now + ms;
            while self.now < end {
                self.now += 100;
                for i in 0..self.sentinels.len() {
                    self.sentinels[i].tick(self.now);
                    let actions = self.sentinels[i].poll_actions();
                    for action in actions {
                        self.apply(i, action);
                    }
                    for (kind, text) in self.sentinels[i].poll_events() {
                        self.events.push((i, kind, text));
                    }
                }
            }
        }

        fn apply(&mut self, from: usize, action: Action) {
            let now = self.now;
            let target = match &action {
                Action::Ping(a) | Action::Info(a) | Action::Hello(a, _) => Some(a.clone()),
                Action::Promote(a) | Action::Follow(a, _) => Some(a.clone()),
                Action::AskDown { to, .. } => Some(to.clone()),
            };
            if target.is_some_and(|a| self.cut.contains(&(from, a))) {
                return;
            }
            match action {
                Action::Ping(a) if !self.down.contains(&a) => {
                    self.sentinels[from].handle_ping(&a, true, now)
                }
                Action::Info(a) if !self.down.contains(&a) => {
                    let report = self.report(&a);
                    self.sentinels[from].handle_info(&a, report, now);
                }
                Action::Hello(a, payload) if !self.down.contains(&a) => {
                    for (j, s) in self.sentinels.iter_mut().enumerate() {
                        if !self.cut.contains(&(j, a.clone())) {
                            s.handle_hello(&payload, now);
                        }
                    }
                }
                Action::AskDown {
                    to,
                    master,
                    ip,
                    port,
                    epoch,
                    run_id,
                } => {
                    let Some(j) = self.sentinels.iter().position(|s| s.announce == to) else {
                        return;
                    };
                    let (down, leader, e) =
                        self.sentinels[j].vote(&Addr::new(ip, port), epoch, &run_id, now);
                    self.sentinels[from].handle_down_reply(&master, &to, down, &leader, e, now);
                }
                Action::Promote(a) if !self.down.contains(&a) => {
                    let failover = self.sentinels[from].groups["mymaster"].failover.as_ref();
                    let epoch = failover.map_or(0, |f| f.epoch);
                    let first = self.promotions.entry(epoch).or_insert_with(|| a.clone());
                    assert_eq!(*first, a, "two instances promoted in epoch {epoch}");
                    self.nodes.get_mut(&a).unwrap().primary = None;
                }
                Action::Follow(a, p) if !self.down.contains(&a) => {
                    self.nodes.get_mut(&a).unwrap().primary = Some(p);
                }
                _ => {}
            }
        }

        fn masters(&self) -> Vec<Addr> {
            self.sentinels
                .iter()
                .map(|s| s.groups["mymaster"].master.addr.clone())
                .collect()
        }

        fn count(&self, kind: &str) -> usize {
            self.events.iter().filter(|(_, k, _)| *k == kind).count()
        }
    }

    #[test]
    fn sentinels_discover_each_other_and_the_replicas() {
        let mut w = World::new();
        w.run_for(5000);
        for s in &w.sentinels {
            let group = &s.groups["mymaster"];
            assert_eq!(group.sentinels.len(), 2);
            assert_eq!(group.replicas.len(), 2);
            assert!(!group.master.is_sdown());
        }
        assert_eq!(w.count("+sdown"), 0);
    }

    #[test]
    fn a_dead_primary_is_replaced_once_and_rejoins_as_a_replica() {
        let mut w = World::new();
        w.run_for(5000);
        w.down.insert(addr(1));
        w.run_for(20_000);
        assert_eq!(w.count("+odown"), 3, "{:?}", w.events);
        assert_eq!(w.count("+elected-leader"), 1, "one leader: {:?}", w.events);
        assert_eq!(w.count("+promoted-slave"), 1);
        // The replica with the greater offset won, every sentinel agrees, with one epoch.
        assert_eq!(w.masters(), vec![addr(3); 3]);
        let epochs: HashSet<u64> = w
            .sentinels
            .iter()
            .map(|s| s.groups["mymaster"].config_epoch)
            .collect();
        assert_eq!(epochs.len(), 1);
        assert_eq!(w.nodes[&addr(2)].primary, Some(addr(3)));
        // The old primary returns as a primary: it is told to follow the new one.
        w.down.remove(&addr(1));
        w.run_for(60_000);
        assert_eq!(w.nodes[&addr(1)].primary, Some(addr(3)), "{:#?}", w.events);
        assert!(w.count("+convert-to-slave") >= 1);
        assert_eq!(w.masters(), vec![addr(3); 3]);
    }

    /// Seeded faults (instances down and back, sentinels cut from instances and from each
    /// other) for a minute, then healing: never two promotions in one epoch, and in the end
    /// every sentinel names one primary that every other instance follows.
    #[test]
    fn random_faults_end_in_one_agreed_primary() {
        let var = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
        let seeds = match var("SHOAL_SENTINEL_SEED") {
            Some(seed) => seed..seed + 1,
            None => 0..var("SHOAL_SENTINEL_SEEDS").unwrap_or(40),
        };
        for seed in seeds {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut w = World::new();
            w.run_for(5000);
            let instances = [addr(1), addr(2), addr(3)];
            let sentinel_addrs: Vec<Addr> =
                w.sentinels.iter().map(|s| s.announce.clone()).collect();
            for _ in 0..120 {
                match rng.u8(..4) {
                    0 => {
                        let a = instances[rng.usize(..3)].clone();
                        if !w.down.remove(&a) && w.down.len() < 2 {
                            w.down.insert(a);
                        }
                    }
                    1 => {
                        let s = rng.usize(..3);
                        let a = match rng.bool() {
                            true => instances[rng.usize(..3)].clone(),
                            false => sentinel_addrs[rng.usize(..3)].clone(),
                        };
                        if !w.cut.remove(&(s, a.clone())) {
                            w.cut.insert((s, a));
                        }
                    }
                    _ => {}
                }
                w.run_for(500);
            }
            w.down.clear();
            w.cut.clear();
            // Long enough for a primary that was told to follow another (by a sentinel that
            // had not heard of the failover) to be failed over again: twice the failover
            // timeout, as in Redis.
            w.run_for(240_000);
            let masters = w.masters();
            let epochs: Vec<u64> = w
                .sentinels
                .iter()
                .map(|s| s.groups["mymaster"].config_epoch)
                .collect();
            let history: Vec<String> = w
                .events
                .iter()
                .filter(|(_, k, _)| !k.ends_with("sdown") && !k.contains("sentinel"))
                .map(|(i, k, t)| format!("{i} {k} {t}"))
                .collect();
            assert!(
                masters.iter().all(|m| *m == masters[0]),
                "seed {seed}: {masters:?} epochs {epochs:?}\n{}",
                history.join("\n")
            );
            let primary = &masters[0];
            for (a, node) in &w.nodes {
                let expected = (a != primary).then(|| primary.clone());
                assert_eq!(
                    node.primary, expected,
                    "seed {seed}: {a} follows {:?}",
                    node.primary
                );
            }
        }
    }

    /// One sentinel that cannot reach the primary does not make the others fail it over.
    #[test]
    fn a_lone_sentinel_cannot_fail_over() {
        let mut w = World::new();
        w.run_for(5000);
        w.cut.insert((0, addr(1)));
        w.run_for(30_000);
        assert_eq!(w.count("+sdown"), 1);
        assert_eq!(w.count("+odown"), 0);
        assert_eq!(w.count("+try-failover"), 0);
        assert_eq!(w.masters(), vec![addr(1); 3]);
    }

    #[test]
    fn one_vote_per_epoch() {
        let mut s = Sentinel::new("me".into(), addr(9));
        s.monitor("m", addr(1), settings(), 0);
        assert_eq!(s.vote(&addr(1), 5, "a", 0), (false, "a".into(), 5));
        assert_eq!(s.vote(&addr(1), 5, "b", 0), (false, "a".into(), 5));
        assert_eq!(s.vote(&addr(1), 4, "b", 0), (false, "a".into(), 5));
        assert_eq!(s.vote(&addr(1), 6, "b", 0), (false, "b".into(), 6));
        assert_eq!(s.vote(&addr(7), 7, "b", 0), (false, "*".into(), 0));
    }

    #[test]
    fn replicas_are_chosen_by_priority_offset_and_run_id() {
        let mut s = Sentinel::new("me".into(), addr(9));
        s.monitor("m", addr(1), settings(), 0);
        let group = s.groups.get_mut("m").unwrap();
        for (port, priority, offset, run) in [
            (2, 100, 50, "b"),
            (3, 10, 10, "c"),
            (4, 0, 99, "a"),
            (5, 10, 10, "a"),
        ] {
            let mut r = Instance::new(addr(port), 1000);
            r.priority = priority;
            r.repl_offset = offset;
            r.run_id = Some(run.into());
            r.info_refresh_ms = 1000;
            group.replicas.insert(addr(port), r);
        }
        assert_eq!(group.select_replica(1000).map(|r| r.addr.port), Some(5));
        group.replicas.remove(&addr(5));
        assert_eq!(group.select_replica(1000).map(|r| r.addr.port), Some(3));
    }

    #[test]
    fn forced_failover_needs_no_agreement() {
        let mut w = World::new();
        w.run_for(5000);
        assert_eq!(w.sentinels[0].force_failover("mymaster", w.now), Ok(()));
        assert_eq!(
            w.sentinels[0].force_failover("mymaster", w.now),
            Err(FailoverRefusal::InProgress)
        );
        assert_eq!(
            w.sentinels[0].force_failover("nope", w.now),
            Err(FailoverRefusal::NoSuchMaster)
        );
        w.run_for(15_000);
        assert_eq!(w.masters(), vec![addr(3); 3]);
        assert_eq!(w.nodes[&addr(1)].primary, Some(addr(3)));
    }
}

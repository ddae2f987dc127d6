//! Sentinel mode: monitoring of unsharded primary/replica groups and their automatic
//! failover, as Redis Sentinel does it.
//!
//! # Layout
//!
//! ```text
//! state.rs   the no-I/O core: the monitored groups, their instances and the other
//!            sentinels; timers (PING, INFO, hello), SDOWN and ODOWN, leader votes, replica
//!            selection, the failover steps and the reconfiguration of the replicas and of a
//!            returning old primary. Inputs are replies and ticks with `now`; outputs are
//!            actions (commands to send) and events (+sdown, +switch-master, ...).
//! ```
//!
//! The driver that connects to the instances, the SENTINEL commands and `--sentinel` are
//! still to come: this is the core they will run. Until then only its tests use it.
#![allow(dead_code)]

pub mod state;

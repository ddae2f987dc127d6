//! In-process pub/sub fan-out, side by side with a bare fan-out over `std::sync::mpsc`.
//!
//! One publisher thread publishes 16-byte messages on one channel as fast as it can; 10
//! subscriber threads each receive every message through an embedded [`shoal::Subscription`]
//! (blocking `recv`). The anchor does the same fan-out with one bounded `sync_channel` per
//! subscriber carrying a shared `Arc<[u8]>`: what the bare delivery costs without Shoal.
//!
//! A second run has the subscribers as async tasks on a one-worker tokio runtime: two
//! threads for two cores, where ten blocking threads spend much of their time switching. The
//! publisher runs ahead of them there, so their queue bound is raised for the run (no
//! subscriber is dropped; the rate is still first publish to last receive).
//!
//! Prints `RESULT <name> <value>` lines: messages delivered per second (the sum over the
//! subscribers, first publish to last receive). `SHOAL_BENCH_MESSAGES` sets the messages
//! published per run (default 1,000,000).

use shoal::{Config, Node};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Barrier};
use std::time::Instant;

const SUBSCRIBERS: usize = 10;

fn messages() -> u64 {
    std::env::var("SHOAL_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

/// Shoal: delivered messages per second.
fn shoal(total: u64) -> f64 {
    let node = Node::open(Config::new()).expect("open node");
    let start = Arc::new(Barrier::new(SUBSCRIBERS + 1));
    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let subscription = node.subscribe(&["bench"]);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..total {
                    subscription.recv().expect("no subscriber is dropped here");
                }
                Instant::now()
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let payload = [b'x'; 16];
    for _ in 0..total {
        node.publish("bench", payload);
    }
    finish(began, subscribers, total)
}

/// Shoal with the subscribers as async tasks on a one-worker tokio runtime (awaiting
/// `next_message`), the publisher on its own thread: two threads for two cores.
fn shoal_async(total: u64) -> f64 {
    let mut config = Config::new();
    config.output_limits.pubsub.hard_bytes = 1 << 30;
    let node = Node::open(config).expect("open node");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("a tokio runtime");
    let tasks: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let mut subscription = node.subscribe(&["bench"]);
            runtime.spawn(async move {
                for _ in 0..total {
                    subscription.next_message().await.expect("not dropped here");
                }
                Instant::now()
            })
        })
        .collect();
    let began = Instant::now();
    let payload = [b'x'; 16];
    for _ in 0..total {
        node.publish("bench", payload);
    }
    let ends = runtime.block_on(async {
        let mut ends = Vec::new();
        for task in tasks {
            ends.push(task.await.expect("subscriber task"));
        }
        ends
    });
    rate(began, ends, total)
}

/// The anchor: the same fan-out over bounded std channels.
fn bare(total: u64) -> f64 {
    let start = Arc::new(Barrier::new(SUBSCRIBERS + 1));
    let mut senders = Vec::new();
    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let (sender, receiver) = sync_channel::<Arc<[u8]>>(65_536);
            senders.push(sender);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..total {
                    receiver.recv().expect("the publisher outlives the run");
                }
                Instant::now()
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for _ in 0..total {
        let message: Arc<[u8]> = Arc::from(&b"benchxxxxxxxxxxxxxxxx"[..]);
        for sender in &senders {
            sender
                .send(Arc::clone(&message))
                .expect("the subscriber runs");
        }
    }
    finish(began, subscribers, total)
}

fn finish(began: Instant, subscribers: Vec<std::thread::JoinHandle<Instant>>, total: u64) -> f64 {
    let ends = subscribers
        .into_iter()
        .map(|s| s.join().expect("subscriber thread"))
        .collect();
    rate(began, ends, total)
}

/// Messages delivered per second, from the first publish to the last receive.
fn rate(began: Instant, ends: Vec<Instant>, total: u64) -> f64 {
    let last = ends.into_iter().max().unwrap_or(began);
    (total * SUBSCRIBERS as u64) as f64 / (last - began).as_secs_f64()
}

fn main() {
    let total = messages();
    let ours = shoal(total);
    let ours_async = shoal_async(total);
    let theirs = bare(total);
    println!("RESULT pubsub_embedded_delivered_per_s {ours:.0}");
    println!("RESULT pubsub_embedded_async_delivered_per_s {ours_async:.0}");
    println!("RESULT bare_mpsc_delivered_per_s {theirs:.0}");
    println!("RESULT ratio_pubsub_embedded {:.2}", ours / theirs);
    println!(
        "RESULT ratio_pubsub_embedded_async {:.2}",
        ours_async / theirs
    );
}

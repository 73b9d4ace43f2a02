//! UDP throughput over loopback, core 0 → core 1: the project's io path against a plain
//! `sendmmsg`/`recvmmsg` loop, in the same run.
//!
//! Both peers use the same harness: the sender keeps at most [`WINDOW`] datagrams ahead of
//! what the receiver has counted (so no path loses packets to a full socket buffer), and an
//! iteration ends when the receiver has all [`PACKETS`]. Throughput is datagrams per second.
//!
//! - `udp/meridian/N`: what a zone does — sockets from `meridian_io::runtime::bind_udp` driven
//!   by `meridian_io::uring::UdpRing` (io_uring: batched `SENDMSG`s from a slot pool, one
//!   submission per batch of 64; one multishot `RECVMSG` into a provided buffer ring) on
//!   threads pinned to cores 0 and 1. All datagrams here are one size to one destination,
//!   so they go as segmentation-offload sends of 64: the best case.
//! - `udp/meridian-unsegmented/N`: the same with offload off: what mixed traffic (a
//!   datagram per client) gets — single datagrams go by `sendmmsg`, 64 per call, from the
//!   ring's slots (`RingConfig::sendmmsg_singles`, the default).
//! - `udp/meridian-unsegmented-uring/N`: offload off and single datagrams by io_uring, one
//!   `SEND` each, 64 per submission (the path `sendmmsg_singles` replaced; kept to show why).
//! - `udp/sendmmsg/N`: `meridian_io::mmsg` on threads pinned to cores 0 and 1, 64 datagrams
//!   per system call each way.
//! - `udp/two-zones-df/1200`: two zones sending at once, as a node's do: a thread pinned to
//!   each core sends by `sendmmsg` to a socket of its own and reads each batch back (so
//!   both the send and the receive are on the clock). Sockets as `bind_udp` makes them:
//!   the IPv4 don't-fragment bit set. Its peer `udp/two-zones-default/1200` leaves the
//!   sockets at the kernel's default, where every datagram of an unconnected socket takes
//!   an IP ID from a table shared by all cores.
//!
//! Run: `cargo bench -p meridian-benches --bench udp`.

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meridian_io::mmsg::{BATCH_MAX, pin_current_thread, recv_batch, send_batch};
use meridian_io::runtime::{bind_udp, set_dont_fragment};
use meridian_io::uring::{RingConfig, SendError, UdpRing};

const PACKETS: u64 = 50_000;
const WINDOW: u64 = 2048;

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

fn run_meridian(size: usize, gso: bool, sendmmsg_singles: bool) -> Duration {
    let config = RingConfig {
        gso,
        sendmmsg_singles,
        ..RingConfig::default()
    };
    let rx: StdUdpSocket = bind_udp(local()).expect("bind").into();
    let tx: StdUdpSocket = bind_udp(local()).expect("bind").into();
    let to = rx.local_addr().expect("addr");
    let received = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let receiver = {
        let received = received.clone();
        std::thread::spawn(move || {
            pin_current_thread(1).expect("pin");
            let mut ring = UdpRing::new(rx, config).expect("ring");
            let mut count = 0;
            while count < PACKETS {
                ring.wait().expect("wait");
                count += ring.recv(usize::MAX, |_, _| {}).expect("recv") as u64;
                received.store(count, Ordering::Release);
            }
            Instant::now()
        })
    };
    let sender = {
        let received = received.clone();
        std::thread::spawn(move || {
            pin_current_thread(0).expect("pin");
            let mut ring = UdpRing::new(tx, config).expect("ring");
            let payload = vec![7u8; size];
            let mut sent = 0;
            while sent < PACKETS {
                while sent - received.load(Ordering::Acquire) + BATCH_MAX as u64 > WINDOW {
                    std::hint::spin_loop();
                }
                // The same batch as the baseline's: up to 64 datagrams, one submission.
                let want = (PACKETS - sent).min(BATCH_MAX as u64);
                let mut queued = 0;
                while queued < want {
                    match ring.send_to(&payload, to) {
                        Ok(()) => queued += 1,
                        Err(SendError::Busy) => {
                            ring.flush().expect("flush");
                            ring.wait().expect("wait");
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                ring.flush().expect("flush");
                sent += queued;
            }
            // Every send completed before the ring (and its buffers) go away.
            drop(ring);
        })
    };
    sender.join().expect("sender");
    let end = receiver.join().expect("receiver");
    end - start
}

fn run_sendmmsg(size: usize) -> Duration {
    let rx: StdUdpSocket = bind_udp(local()).expect("bind").into();
    let tx: StdUdpSocket = bind_udp(local()).expect("bind").into();
    rx.set_nonblocking(false).expect("blocking");
    tx.set_nonblocking(false).expect("blocking");
    let to = rx.local_addr().expect("addr");
    let received = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let receiver = {
        let received = received.clone();
        std::thread::spawn(move || {
            pin_current_thread(1).expect("pin");
            let mut buffers = vec![[0u8; 1500]; BATCH_MAX];
            let mut lengths = [0usize; BATCH_MAX];
            let mut count = 0;
            while count < PACKETS {
                count += recv_batch(&rx, &mut buffers, &mut lengths).expect("recvmmsg") as u64;
                received.store(count, Ordering::Release);
            }
            Instant::now()
        })
    };
    let sender = {
        let received = received.clone();
        std::thread::spawn(move || {
            pin_current_thread(0).expect("pin");
            let payload = vec![7u8; size];
            let batch: Vec<&[u8]> = (0..BATCH_MAX).map(|_| payload.as_slice()).collect();
            let mut sent = 0;
            while sent < PACKETS {
                while sent - received.load(Ordering::Acquire) + BATCH_MAX as u64 > WINDOW {
                    std::hint::spin_loop();
                }
                let want = (PACKETS - sent).min(BATCH_MAX as u64) as usize;
                sent += send_batch(&tx, to, &batch[..want]).expect("sendmmsg") as u64;
            }
        })
    };
    sender.join().expect("sender");
    let end = receiver.join().expect("receiver");
    end - start
}

/// Two zones sending at once, as a node's do: a thread on each of cores 0 and 1 sends
/// [`PACKETS`] datagrams of `size` bytes by `sendmmsg` (64 per call) to a socket of its own
/// and reads each batch back before the next. With `dont_fragment` off the sockets are left
/// at the kernel's default, as before `bind_udp` set the bit.
fn run_two_zones(size: usize, dont_fragment: bool) -> Duration {
    let start = Instant::now();
    let zones: Vec<_> = (0..2)
        .map(|core| {
            std::thread::spawn(move || {
                pin_current_thread(core).expect("pin");
                let rx = bind_udp(local()).expect("bind");
                let tx = bind_udp(local()).expect("bind");
                set_dont_fragment(&tx, dont_fragment).expect("IP_MTU_DISCOVER");
                let (rx, tx): (StdUdpSocket, StdUdpSocket) = (rx.into(), tx.into());
                rx.set_nonblocking(false).expect("blocking");
                tx.set_nonblocking(false).expect("blocking");
                let to = rx.local_addr().expect("addr");
                let payload = vec![7u8; size];
                let batch: Vec<&[u8]> = (0..BATCH_MAX).map(|_| payload.as_slice()).collect();
                let mut buffers = vec![[0u8; 1500]; BATCH_MAX];
                let mut lengths = [0usize; BATCH_MAX];
                let mut done = 0;
                while done < PACKETS {
                    let want = (PACKETS - done).min(BATCH_MAX as u64) as usize;
                    let sent = send_batch(&tx, to, &batch[..want]).expect("sendmmsg");
                    let mut back = 0;
                    while back < sent {
                        back += recv_batch(&rx, &mut buffers[..sent - back], &mut lengths)
                            .expect("recvmmsg");
                    }
                    done += sent as u64;
                }
            })
        })
        .collect();
    for zone in zones {
        zone.join().expect("zone");
    }
    start.elapsed()
}

fn udp(c: &mut Criterion) {
    let mut group = c.benchmark_group("udp");
    group.throughput(Throughput::Elements(PACKETS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for size in [64usize, 1200] {
        group.bench_function(BenchmarkId::new("meridian", size), |b| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| run_meridian(size, true, true))
                    .sum()
            })
        });
        // The same path with segmentation offload off: what traffic that cannot be
        // segmented (a datagram per client, mixed sizes) gets.
        group.bench_function(BenchmarkId::new("meridian-unsegmented", size), |b| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| run_meridian(size, false, true))
                    .sum()
            })
        });
        group.bench_function(BenchmarkId::new("meridian-unsegmented-uring", size), |b| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| run_meridian(size, false, false))
                    .sum()
            })
        });
        group.bench_function(BenchmarkId::new("sendmmsg", size), |b| {
            b.iter_custom(|iterations| (0..iterations).map(|_| run_sendmmsg(size)).sum())
        });
    }
    // Two cores' datagrams: twice `PACKETS` per iteration.
    group.throughput(Throughput::Elements(2 * PACKETS));
    for (name, dont_fragment) in [("two-zones-df", true), ("two-zones-default", false)] {
        group.bench_function(BenchmarkId::new(name, 1200), |b| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| run_two_zones(1200, dont_fragment))
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, udp);
criterion_main!(benches);

//! The endpoint's UDP socket: large kernel buffers, and GSO batches the kernel accepts.
//!
//! quinn hands the socket up to 10 datagrams of the path MTU as one GSO send, but Linux takes
//! at most [`GSO_SEND_BYTES_MAX`] per send. Past a 6.5 KB MTU (which discovery finds on
//! loopback and jumbo-frame paths), a full batch fails with EMSGSIZE, which quinn-udp drops
//! without a word: QUIC then sees bursts of losses, shrinks its window and takes the large
//! MTU for a black hole, and a burst's tail waits on loss recovery. [`GsoCapped`] tells quinn
//! how many datagrams of the size it last sent fit one send, so that its batches fit, and
//! sends a batch built before that (the first after the MTU grew, or one to a peer with a
//! larger MTU than the last) in parts.

use quinn::udp::Transmit;
use quinn::{AsyncUdpSocket, UdpPoller};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The most UDP payload one send may carry, all segments together: an IPv4 packet's 65535
/// bytes less its 20-byte header and UDP's 8 (IPv6 allows 20 more; one bound serves both).
pub const GSO_SEND_BYTES_MAX: usize = 65_507;

/// What the socket's kernel buffers are asked for (the kernel caps it at
/// `net.core.rmem_max` / `wmem_max`): the default (208 KB) holds only a few large datagrams.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// A UDP socket bound to `addr`, with large kernel buffers, as quinn's runtime wraps it.
pub fn bind(addr: SocketAddr, runtime: &dyn quinn::Runtime) -> io::Result<Arc<GsoCapped>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Asked, not required: the kernel may give less.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(Arc::new(GsoCapped {
        inner: runtime.wrap_udp_socket(socket.into())?,
        segments_max: AtomicUsize::new(usize::MAX),
    }))
}

/// quinn's socket, offering quinn only GSO batches that fit one send, and sending one that
/// does not in parts.
#[derive(Debug)]
pub struct GsoCapped {
    inner: Arc<dyn AsyncUdpSocket>,
    /// Datagrams of the size last sent that fit one send.
    segments_max: AtomicUsize,
}

impl AsyncUdpSocket for GsoCapped {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let Some(segment_bytes) = transmit.segment_size else {
            return self.inner.try_send(transmit);
        };
        self.segments_max
            .store(segments_per_send(segment_bytes), Ordering::Relaxed);
        for (i, part) in send_parts(transmit.contents.len(), segment_bytes).enumerate() {
            let part = Transmit {
                contents: &transmit.contents[part],
                ..transmit.clone()
            };
            match self.inner.try_send(&part) {
                Ok(()) => {}
                // Nothing sent yet: quinn waits until the socket is writable and retries.
                Err(e) if i == 0 => return Err(e),
                // Some parts sent: the rest is lost as UDP datagrams are, and QUIC resends it
                // (rare: quinn's next batches fit one send).
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [quinn::udp::RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        let fit = self.segments_max.load(Ordering::Relaxed);
        self.inner.max_transmit_segments().min(fit)
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// How many datagrams of `segment_bytes` one send carries (at least one).
fn segments_per_send(segment_bytes: usize) -> usize {
    (GSO_SEND_BYTES_MAX / segment_bytes.max(1)).max(1)
}

/// The byte ranges of a batch of `total_bytes` in `segment_bytes` datagrams that one send each
/// can carry: whole segments, at most [`GSO_SEND_BYTES_MAX`] together (or one segment, if a
/// single one is larger: such a send fails as an oversized datagram does).
fn send_parts(total_bytes: usize, segment_bytes: usize) -> impl Iterator<Item = Range<usize>> {
    let per_send = segments_per_send(segment_bytes) * segment_bytes.max(1);
    (0..total_bytes)
        .step_by(per_send)
        .map(move |start| start..total_bytes.min(start + per_send))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_whole_segments_within_one_send() {
        for (total, segment) in [
            (10 * 1452, 1452),
            (10 * 9000, 9000),
            (65_000 * 3 + 7, 65_000),
        ] {
            let parts: Vec<_> = send_parts(total, segment).collect();
            assert_eq!(parts.first().map(|p| p.start), Some(0));
            assert_eq!(parts.last().map(|p| p.end), Some(total));
            for pair in parts.windows(2) {
                assert_eq!(pair[0].end, pair[1].start, "{parts:?}");
            }
            for part in &parts[..parts.len() - 1] {
                assert_eq!(part.len() % segment, 0, "{parts:?}");
            }
            assert!(parts.iter().all(|p| p.len() <= GSO_SEND_BYTES_MAX));
        }
        // Small batches go as one send, as quinn made them.
        assert_eq!(send_parts(10 * 1452, 1452).count(), 1);
        // 9000-byte datagrams: 7 per send.
        assert_eq!(send_parts(10 * 9000, 9000).count(), 2);
    }

    /// A GSO batch larger than one send may carry arrives whole: without the parts, the
    /// kernel refuses the send (EMSGSIZE) and quinn-udp drops every datagram in it.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_batch_past_one_send_arrives_in_whole_datagrams() {
        const SEGMENT_BYTES: usize = 40_000;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _inside = runtime.enter();
        let sender = bind(
            "127.0.0.1:0".parse().unwrap(),
            quinn::default_runtime().unwrap().as_ref(),
        )
        .unwrap();
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let contents: Vec<u8> = (0..2 * SEGMENT_BYTES)
            .map(|i| (i / SEGMENT_BYTES) as u8)
            .collect();
        let transmit = Transmit {
            destination: receiver.local_addr().unwrap(),
            ecn: None,
            contents: &contents,
            segment_size: Some(SEGMENT_BYTES),
            src_ip: None,
        };
        // As quinn does: wait until the socket is writable (tokio learns it lazily), then send.
        let mut poller = sender.clone().create_io_poller();
        runtime
            .block_on(std::future::poll_fn(|cx| poller.as_mut().poll_writable(cx)))
            .unwrap();
        sender.try_send(&transmit).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        for segment in 0..2u8 {
            let got = receiver.recv(&mut buf).expect("a datagram");
            assert_eq!(got, SEGMENT_BYTES);
            assert!(buf[..got].iter().all(|&b| b == segment));
        }
        // From now on quinn builds batches of datagrams this large that fit one send.
        assert_eq!(sender.max_transmit_segments(), 1);
    }
}

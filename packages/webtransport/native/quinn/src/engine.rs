//! One quinn-proto endpoint (a UDP socket and its connections) driven by its own thread.
//!
//! The I/O thread owns the socket and the timers: it reads datagrams in batches (recvmmsg/GRO through
//! quinn-udp), feeds them to quinn-proto, builds packets and sends them in batches (sendmmsg/GSO), and appends
//! what JavaScript must learn (stream chunks, datagrams, stream and connection events) to one outbox that is
//! handed to the JS thread as a single buffer per wake-up, never per packet (see `Outbox`).
//!
//! JavaScript acts on connections synchronously through the functions in `lib.rs` (write, datagram, close, ...):
//! each takes the state lock for a few quinn-proto calls and marks the connection dirty; `kick` then wakes the
//! I/O thread once per JS turn to build and send what was queued.
use bytes::{Bytes, BytesMut};
use quinn_proto::{
    ClientConfig, ConnectionError, ConnectionHandle, DatagramEvent, Dir, EndpointConfig, EndpointEvent, Event,
    ServerConfig, Side, StreamEvent, StreamId, Transmit, TransportConfig, VarInt,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::Interest;
use crate::trace::trace;

// Event records in the outbox (little-endian): u8 type, u32 connection id, then per type.
pub const EV_NEW: u8 = 1; // server: a new connection; u16 len + peer address text
pub const EV_HALF_RTT: u8 = 2; // server: 1-RTT keys ready (0.5-RTT writes allowed); u8 n, n x u32 preamble bytes written
pub const EV_CONNECTED: u8 = 3; // handshake complete
pub const EV_DATA: u8 = 4; // u64 stream, u8 fin, u32 len, bytes
pub const EV_RESET: u8 = 5; // u64 stream, u64 code
pub const EV_STOP: u8 = 6; // u64 stream, u64 code
pub const EV_DGRAM: u8 = 7; // u32 len, bytes
pub const EV_WRITABLE: u8 = 8; // u64 stream
pub const EV_AVAILABLE: u8 = 9; // the peer raised a stream limit
pub const EV_CLOSED: u8 = 10; // u8 local, u8 isApp, u8 timedOut, u64 code, u16 len, reason
pub const EV_FINISHED: u8 = 11; // u64 stream: all we sent on it, FIN included, was acknowledged (or it was stopped)

/// Outbox size above which the I/O thread stops reading the socket until JavaScript took the outbox: a JS
/// thread that falls behind makes the kernel drop packets (QUIC recovers), it never grows our memory.
pub const OUTBOX_LIMIT: usize = 32 * 1024 * 1024;
/// Reads per wake-up before packets are processed, so a flood cannot starve timers and sends.
const RECV_ROUNDS: usize = 8;
const RECV_BUF: usize = 64 * 1024;

#[derive(Default)]
pub struct Counters {
    pub packets_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub dropped_unknown: AtomicU64,
    pub dropped_malformed: AtomicU64,
    pub dropped_refused: AtomicU64,
    pub send_errors: AtomicU64,
    pub outbox_stalls: AtomicU64,
    /// Panics caught in the I/O thread (a bug): the loop is restarted on the same socket and state.
    pub panics: AtomicU64,
}

pub struct Conn {
    pub ch: ConnectionHandle,
    pub q: quinn_proto::Connection,
    pub dirty: bool,
    paused: HashSet<u64>,
    /// Streams that became readable while paused.
    held: HashSet<u64>,
    /// A stream opened by `streams_left` (quinn-proto cannot tell the peer's limit without opening one), used by
    /// the next write to a new local stream of that direction: ids are allocated in order on both sides.
    pub preopened: [Option<StreamId>; 2],
    timeout: Option<Instant>,
    closed_sent: bool,
    local_close: Option<(u64, Bytes, bool)>,
    /// Packets were built since our close(): the CONNECTION_CLOSE is on its way.
    close_flushed: bool,
    abandon: bool,
}

pub struct State {
    pub endpoint: quinn_proto::Endpoint,
    pub client_config: Option<ClientConfig>,
    pub conns: HashMap<u32, Conn>,
    by_handle: HashMap<usize, u32>,
    next_id: u32,
    max_gso: usize,
    /// Event records built while the lock is held; moved to the outbox at the end of a round.
    events: Vec<u8>,
    /// Server: the contents of the unidirectional streams every connection opens first (HTTP/3 control stream
    /// with SETTINGS, QPACK streams), written in the 0.5-RTT flight (see `drive`).
    preamble: Vec<Vec<u8>>,
    any_dirty: bool,
}

pub struct Shared {
    pub state: Mutex<State>,
    pub wake: tokio::sync::Notify,
    pub outbox: Mutex<Vec<u8>>,
    pub out_pending: AtomicBool,
    pub stop: AtomicBool,
    pub local: SocketAddr,
    pub counters: Counters,
    /// Called (from the I/O thread) when the outbox went from empty to non-empty.
    pub notify_js: Box<dyn Fn() + Send + Sync>,
}

pub struct EndpointOptions {
    pub preamble: Vec<Vec<u8>>,
    pub transport: Arc<TransportConfig>,
    pub server: Option<ServerConfig>,
    pub client: Option<ClientConfig>,
    pub max_udp_payload: u16,
    pub socket_buffer: usize,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held poisons it; the state is still consistent enough to shut down.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the round's events to the outbox and tells JS if it was empty.
    fn publish(&self, st: &mut State) {
        if st.events.is_empty() {
            return;
        }
        let mut out = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        out.extend_from_slice(&st.events);
        st.events.clear();
        drop(out);
        if !self.out_pending.swap(true, Ordering::AcqRel) {
            trace!("notify js");
            (self.notify_js)();
        }
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// RFC 9000 §17: the fixed bit set, and a long header long enough to hold version and DCID length; anything
/// else counts as malformed rather than as a packet for an unknown connection.
fn plausible_header(p: &[u8]) -> bool {
    match p.first() {
        Some(b) if b & 0x40 != 0 => b & 0x80 == 0 || p.len() >= 6,
        Some(b) if b & 0x80 != 0 && p.len() >= 5 => p[1..5] == [0, 0, 0, 0], // version negotiation
        _ => false,
    }
}

fn head(buf: &mut Vec<u8>, ty: u8, id: u32) {
    buf.push(ty);
    buf.extend_from_slice(&id.to_le_bytes());
}

fn push_closed(buf: &mut Vec<u8>, id: u32, local: bool, is_app: bool, timed_out: bool, code: u64, reason: &[u8]) {
    head(buf, EV_CLOSED, id);
    buf.push(local as u8);
    buf.push(is_app as u8);
    buf.push(timed_out as u8);
    buf.extend_from_slice(&code.to_le_bytes());
    let r = &reason[..reason.len().min(1024)];
    buf.extend_from_slice(&(r.len() as u16).to_le_bytes());
    buf.extend_from_slice(r);
}

pub fn bind(addr: SocketAddr, socket_buffer: usize) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        // '::' also accepts IPv4 (mapped addresses), as the quiche engine's socket does.
        let _ = s.set_only_v6(false);
    }
    let _ = s.set_recv_buffer_size(socket_buffer);
    let _ = s.set_send_buffer_size(socket_buffer);
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

impl State {
    pub fn new(o: &EndpointOptions) -> Self {
        let mut ep_cfg = EndpointConfig::default();
        let _ = ep_cfg.max_udp_payload_size(o.max_udp_payload.max(1200) as u64);
        let server = o.server.clone().map(Arc::new);
        State {
            endpoint: quinn_proto::Endpoint::new(Arc::new(ep_cfg), server),
            client_config: o.client.clone(),
            conns: HashMap::new(),
            by_handle: HashMap::new(),
            next_id: 1,
            max_gso: 1,
            events: Vec::with_capacity(64 * 1024),
            preamble: o.preamble.clone(),
            any_dirty: false,
        }
    }

    fn insert(&mut self, ch: ConnectionHandle, q: quinn_proto::Connection) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.by_handle.insert(ch.0, id);
        self.conns.insert(
            id,
            Conn {
                ch,
                q,
                dirty: true,
                paused: HashSet::new(),
                held: HashSet::new(),
                preopened: [None, None],
                timeout: None,
                closed_sent: false,
                local_close: None,
                close_flushed: false,
                abandon: false,
            },
        );
        self.any_dirty = true;
        id
    }

    pub fn connect(&mut self, remote: SocketAddr, server_name: &str) -> Result<u32, String> {
        let cfg = self.client_config.clone().ok_or("not a client endpoint")?;
        let (ch, q) = self.endpoint.connect(cfg, remote, server_name).map_err(|e| e.to_string())?;
        Ok(self.insert(ch, q))
    }

    pub fn mark(&mut self, id: u32) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.dirty = true;
            self.any_dirty = true;
        }
    }

    /// Drop a connection without sending anything more, except a CONNECTION_CLOSE asked for and not built yet.
    pub fn remove(&mut self, id: u32) {
        if let Some(c) = self.conns.get_mut(&id) {
            if c.local_close.is_some() && !c.close_flushed {
                c.abandon = true;
                c.dirty = true;
                self.any_dirty = true;
                return;
            }
        }
        if let Some(c) = self.conns.remove(&id) {
            self.by_handle.remove(&c.ch.0);
            // Frees the endpoint's routes for it (connection ids, reset token).
            let _ = self.endpoint.handle_event(c.ch, EndpointEvent::drained());
        }
    }

    pub fn close(&mut self, id: u32, code: u64, reason: &[u8], is_app: bool, abandon: bool) {
        if let Some(c) = self.conns.get_mut(&id) {
            if c.local_close.is_none() && !c.closed_sent {
                let r = Bytes::copy_from_slice(&reason[..reason.len().min(512)]);
                c.local_close = Some((code, r.clone(), is_app));
                // quinn-proto only sends application closes; a transport code is carried as one (see README).
                c.q.close(Instant::now(), VarInt::from_u64(code).unwrap_or(VarInt::from_u32(0)), r);
            }
            c.abandon |= abandon;
            c.dirty = true;
            self.any_dirty = true;
        }
    }

    pub fn set_paused(&mut self, id: u32, stream: u64, paused: bool) {
        let mut ev = std::mem::take(&mut self.events);
        if let Some(c) = self.conns.get_mut(&id) {
            if paused {
                c.paused.insert(stream);
            } else if c.paused.remove(&stream) && c.held.remove(&stream) {
                read_stream(c, id, StreamId(stream), &mut ev);
                c.dirty = true;
                self.any_dirty = true;
            }
        }
        self.events = ev;
    }

    /// Datagrams from the socket (GRO segments already split).
    fn handle_datagram(&mut self, now: Instant, meta: &quinn_udp::RecvMeta, data: BytesMut, counters: &Counters) {
        let mut peek = [0u8; 7];
        let k = data.len().min(7);
        peek[..k].copy_from_slice(&data[..k]);
        let peek = &peek[..k];
        match self.endpoint.handle(now, meta.addr, meta.dst_ip, meta.ecn, data) {
            Some((ch, DatagramEvent::NewConnection(q))) => {
                let peer = q.remote_address().to_string();
                let id = self.insert(ch, q);
                head(&mut self.events, EV_NEW, id);
                self.events.extend_from_slice(&(peer.len() as u16).to_le_bytes());
                self.events.extend_from_slice(peer.as_bytes());
            }
            Some((ch, DatagramEvent::ConnectionEvent(ev))) => {
                if let Some(id) = self.by_handle.get(&ch.0) {
                    if let Some(c) = self.conns.get_mut(id) {
                        c.q.handle_event(ev);
                        c.dirty = true;
                        self.any_dirty = true;
                    }
                }
            }
            None => {
                if plausible_header(&peek) {
                    counters.dropped_unknown.fetch_add(1, Ordering::Relaxed);
                } else {
                    counters.dropped_malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Handles expired timers and drives every dirty connection; returns the next deadline.
    fn drive_all(&mut self, now: Instant, transmits: &mut VecDeque<Transmit>) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut gone: Vec<u32> = Vec::new();
        let ids: Vec<u32> = self.conns.keys().copied().collect();
        for id in ids {
            let c = match self.conns.get_mut(&id) {
                Some(c) => c,
                None => continue,
            };
            if let Some(t) = c.timeout {
                if t <= now {
                    c.q.handle_timeout(now);
                    c.dirty = true;
                }
            }
            if c.dirty {
                c.dirty = false;
                if drive(&mut self.endpoint, c, id, now, self.max_gso, &self.preamble, &mut self.events, transmits) {
                    gone.push(id);
                    continue;
                }
            }
            if let Some(t) = c.timeout {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        for id in gone {
            if let Some(c) = self.conns.remove(&id) {
                self.by_handle.remove(&c.ch.0);
            }
        }
        self.any_dirty = false;
        while let Some(t) = self.endpoint.poll_transmit() {
            transmits.push_back(t);
        }
        next
    }
}

/// One connection's events, reads and packets. Returns true once the connection is gone.
fn drive(
    endpoint: &mut quinn_proto::Endpoint,
    c: &mut Conn,
    id: u32,
    now: Instant,
    max_gso: usize,
    preamble: &[Vec<u8>],
    ev: &mut Vec<u8>,
    transmits: &mut VecDeque<Transmit>,
) -> bool {
    let mut drained = false;
    // Endpoint events may produce connection events, which may produce more of both.
    loop {
        let mut progressed = false;
        while let Some(e) = c.q.poll_endpoint_events() {
            progressed = true;
            if e.is_drained() {
                drained = true;
            }
            if let Some(ce) = endpoint.handle_event(c.ch, e) {
                c.q.handle_event(ce);
            }
        }
        while let Some(e) = c.q.poll() {
            progressed = true;
            match e {
                Event::HandshakeDataReady => {
                    trace!("c{id} HandshakeDataReady");
                    if c.q.side() == Side::Server {
                        // The server's first streams go out with its handshake flight, in the same datagram
                        // when there is room, without waiting for a JavaScript turn: a client may send its
                        // extended CONNECT only once it has our SETTINGS (draft-ietf-webtrans-http3-02 §3.1).
                        // JavaScript is told how much of each was taken and writes the rest itself.
                        head(ev, EV_HALF_RTT, id);
                        ev.push(preamble.len() as u8);
                        for b in preamble {
                            let n = match c.q.streams().open(Dir::Uni) {
                                Some(s) => c.q.send_stream(s).write(b).unwrap_or(0),
                                None => 0,
                            };
                            ev.extend_from_slice(&(n as u32).to_le_bytes());
                        }
                    }
                }
                Event::Connected => {
                    trace!("c{id} Connected");
                    head(ev, EV_CONNECTED, id)
                }
                Event::ConnectionLost { reason } => {
                    if !c.closed_sent {
                        c.closed_sent = true;
                        lost(ev, id, &reason, c.local_close.as_ref());
                    }
                }
                Event::Stream(StreamEvent::Opened { dir }) => {
                    while let Some(s) = c.q.streams().accept(dir) {
                        trace!("c{id} opened s{}", s.0);
                        if c.paused.contains(&s.0) {
                            c.held.insert(s.0);
                        } else {
                            read_stream(c, id, s, ev);
                        }
                    }
                }
                Event::Stream(StreamEvent::Readable { id: s }) => {
                    trace!("c{id} readable s{}", s.0);
                    if c.paused.contains(&s.0) {
                        c.held.insert(s.0);
                    } else {
                        read_stream(c, id, s, ev);
                    }
                }
                Event::Stream(StreamEvent::Writable { id: s }) => {
                    head(ev, EV_WRITABLE, id);
                    ev.extend_from_slice(&s.0.to_le_bytes());
                }
                Event::Stream(StreamEvent::Stopped { id: s, error_code }) => {
                    head(ev, EV_STOP, id);
                    ev.extend_from_slice(&s.0.to_le_bytes());
                    ev.extend_from_slice(&u64::from(error_code).to_le_bytes());
                }
                Event::Stream(StreamEvent::Available { .. }) => head(ev, EV_AVAILABLE, id),
                Event::Stream(StreamEvent::Finished { id: s }) => {
                    // The peer has everything we sent on the stream, FIN included (RFC 9000 §3.1 "Data Recvd"):
                    // the HTTP/3 glue closes a connection only once its sessions' close capsules are delivered.
                    head(ev, EV_FINISHED, id);
                    ev.extend_from_slice(&s.0.to_le_bytes());
                }
                Event::DatagramReceived => {
                    while let Some(d) = c.q.datagrams().recv() {
                        head(ev, EV_DGRAM, id);
                        ev.extend_from_slice(&(d.len() as u32).to_le_bytes());
                        ev.extend_from_slice(&d);
                    }
                }
            }
        }
        if !progressed {
            break;
        }
    }
    while let Some(t) = c.q.poll_transmit(now, max_gso) {
        transmits.push_back(t);
    }
    c.timeout = c.q.poll_timeout();
    if c.local_close.is_some() {
        c.close_flushed = true;
    }
    if c.abandon && c.q.is_closed() && !drained {
        // Our CONNECTION_CLOSE is in `transmits`: no closing period for an abandoned connection. Not when the
        // connection's own drained event already went to the endpoint above: that freed its slot, and a second
        // one panics in quinn-proto (`invalid key`), every turn after, as the connection stays in our map.
        let _ = endpoint.handle_event(c.ch, EndpointEvent::drained());
        drained = true;
    }
    if drained || c.q.is_drained() {
        if !c.closed_sent {
            c.closed_sent = true;
            match &c.local_close {
                Some((code, reason, is_app)) => push_closed(ev, id, true, *is_app, false, *code, reason),
                None => push_closed(ev, id, true, true, false, 0, b""),
            }
        }
        return true;
    }
    false
}

fn lost(ev: &mut Vec<u8>, id: u32, reason: &ConnectionError, local: Option<&(u64, Bytes, bool)>) {
    match reason {
        ConnectionError::ApplicationClosed(a) => {
            push_closed(ev, id, false, true, false, u64::from(a.error_code), &a.reason)
        }
        ConnectionError::ConnectionClosed(c) => {
            push_closed(ev, id, false, false, false, u64::from(c.error_code), &c.reason)
        }
        ConnectionError::TransportError(t) => {
            // We closed it for a protocol violation by the peer.
            push_closed(ev, id, true, false, false, u64::from(t.code), t.reason.as_bytes())
        }
        ConnectionError::TimedOut => push_closed(ev, id, false, false, true, 0, b""),
        ConnectionError::LocallyClosed => match local {
            Some((code, r, is_app)) => push_closed(ev, id, true, *is_app, false, *code, r),
            None => push_closed(ev, id, true, true, false, 0, b""),
        },
        ConnectionError::Reset => push_closed(ev, id, false, false, false, 0, b"stateless reset"),
        ConnectionError::VersionMismatch => push_closed(ev, id, false, false, false, 0, b"version mismatch"),
    }
}

/// Everything the stream has now, as one record (contiguous chunks concatenated), FIN or RESET_STREAM included.
fn read_stream(c: &mut Conn, id: u32, s: StreamId, ev: &mut Vec<u8>) {
    let mut rs = c.q.recv_stream(s);
    let mut chunks = match rs.read(true) {
        Ok(ch) => ch,
        Err(_) => return,
    };
    let start = ev.len();
    head(ev, EV_DATA, id);
    ev.extend_from_slice(&s.0.to_le_bytes());
    let fin_at = ev.len();
    ev.push(0);
    let len_at = ev.len();
    ev.extend_from_slice(&0u32.to_le_bytes());
    let mut n: usize = 0;
    let mut fin = false;
    let mut reset: Option<u64> = None;
    loop {
        match chunks.next(usize::MAX) {
            Ok(Some(chunk)) => {
                n += chunk.bytes.len();
                ev.extend_from_slice(&chunk.bytes);
            }
            Ok(None) => {
                fin = true;
                break;
            }
            Err(quinn_proto::ReadError::Blocked) => break,
            Err(quinn_proto::ReadError::Reset(code)) => {
                reset = Some(u64::from(code));
                break;
            }
        }
    }
    let _ = chunks.finalize();
    if n == 0 && !fin {
        ev.truncate(start);
    } else {
        ev[fin_at] = fin as u8;
        ev[len_at..len_at + 4].copy_from_slice(&(n as u32).to_le_bytes());
    }
    if let Some(code) = reset {
        head(ev, EV_RESET, id);
        ev.extend_from_slice(&s.0.to_le_bytes());
        ev.extend_from_slice(&code.to_le_bytes());
    }
}

/// The I/O thread's loop; returns when `stop` is set.
/// Runs the I/O loop until `stop`; a panic (a bug, never expected from peer input) is counted and the loop
/// restarted on the same socket and connections, so one bad packet cannot silently kill the endpoint.
pub fn run_thread(shared: Arc<Shared>, socket: UdpSocket) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(_) => return,
    };
    loop {
        let s = match socket.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        };
        let sh = shared.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(run(sh, s))));
        if r.is_ok() || shared.stop.load(Ordering::Acquire) {
            return;
        }
        shared.counters.panics.fetch_add(1, Ordering::Relaxed);
        if shared.counters.panics.load(Ordering::Relaxed) > 1000 {
            return;
        }
    }
}

async fn run(shared: Arc<Shared>, socket: UdpSocket) {
    crate::trace::PORT.with(|p| p.set(shared.local.port()));
    trace!("run start");
    let io = match tokio::net::UdpSocket::from_std(socket) {
        Ok(s) => s,
        Err(_) => return,
    };
    let _ = quinn_udp::UdpSocketState::configure((&io).into());
    let mut udp = quinn_udp::UdpSocketState::new();
    // Probing GSO and GRO binds two throwaway sockets: done once per process, not per endpoint (a Node client
    // has an endpoint per connection, and its setup time is session setup time).
    static UDP_STATE: std::sync::OnceLock<quinn_udp::UdpState> = std::sync::OnceLock::new();
    let udp_state = UDP_STATE.get_or_init(quinn_udp::UdpState::new);
    shared.lock().max_gso = udp_state.max_gso_segments().max(1);
    // A new socket's write readiness is unknown to tokio until its first poll: without this the first flight's
    // send fails with WouldBlock and waits for another round of the loop.
    let _ = io.writable().await;
    let batch = quinn_udp::BATCH_SIZE;
    trace!("run ready");
    let mut storage = vec![0u8; RECV_BUF * batch];
    let mut meta = vec![quinn_udp::RecvMeta::default(); batch];
    trace!("buffers ready");
    let mut transmits: VecDeque<Transmit> = VecDeque::new();
    let mut deadline: Option<Instant> = None;
    let far = Duration::from_secs(3600);
    loop {
        if shared.stop.load(Ordering::Acquire) {
            // Last round: what JS queued (CONNECTION_CLOSEs of a closing listener) leaves before the socket closes.
            let mut st = shared.lock();
            st.drive_all(Instant::now(), &mut transmits);
            drop(st);
            while !transmits.is_empty() {
                let (a, b) = transmits.as_slices();
                let slice = if a.is_empty() { b } else { a };
                match io.try_io(Interest::WRITABLE, || udp.send((&io).into(), udp_state, slice)) {
                    Ok(n) => {
                        transmits.drain(..n);
                    }
                    Err(_) => break,
                }
            }
            break;
        }
        let reading = shared.outbox_len() < OUTBOX_LIMIT;
        trace!("select");
        let sleep_to = deadline.unwrap_or_else(|| Instant::now() + far);
        let mut readable = false;
        let why;
        tokio::select! {
            r = io.readable(), if reading => { readable = r.is_ok(); why = "readable"; }
            _ = io.writable(), if !transmits.is_empty() => { why = "writable"; }
            _ = shared.wake.notified() => { why = "kick"; }
            _ = tokio::time::sleep_until(sleep_to.into()) => { why = "timer"; }
        }
        trace!("wake {why}");
        if !reading {
            shared.counters.outbox_stalls.fetch_add(1, Ordering::Relaxed);
        }
        let now = Instant::now();
        let mut st = shared.lock();
        if readable {
            for _ in 0..RECV_ROUNDS {
                let mut bufs: Vec<IoSliceMut> = storage.chunks_mut(RECV_BUF).map(IoSliceMut::new).collect();
                let r = io.try_io(Interest::READABLE, || udp.recv((&io).into(), &mut bufs, &mut meta));
                let n = match r {
                    Ok(n) => n,
                    Err(_) => break,
                };
                drop(bufs);
                for (i, m) in meta.iter().take(n).enumerate() {
                    trace!("recv {} bytes (stride {})", m.len, m.stride);
                    let buf = &storage[i * RECV_BUF..i * RECV_BUF + m.len];
                    shared.counters.packets_received.fetch_add(1, Ordering::Relaxed);
                    shared.counters.bytes_received.fetch_add(m.len as u64, Ordering::Relaxed);
                    if m.len == 0 {
                        // An empty UDP payload is no QUIC packet (RFC 9000 §12.2).
                        shared.counters.dropped_malformed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let stride = if m.stride == 0 { m.len } else { m.stride };
                    for seg in buf.chunks(stride) {
                        st.handle_datagram(now, m, BytesMut::from(seg), &shared.counters);
                    }
                }
            }
        }
        deadline = st.drive_all(now, &mut transmits);
        if crate::trace::on() {
            let sizes: Vec<String> = transmits.iter().map(|t| format!("{}/{:?}", t.contents.len(), t.segment_size)).collect();
            trace!("built [{}] events {} bytes, next timer in {:?}", sizes.join(" "), st.events.len(), deadline.map(|d| d.saturating_duration_since(now)));
        }
        shared.publish(&mut st);
        drop(st);
        // Send what was built, batched (sendmmsg, GSO segments); what the socket refuses waits for writable.
        while !transmits.is_empty() {
            let (a, b) = transmits.as_slices();
            let slice = if a.is_empty() { b } else { a };
            match io.try_io(Interest::WRITABLE, || udp.send((&io).into(), udp_state, slice)) {
                Ok(n) => {
                    for t in transmits.drain(..n) {
                        shared.counters.packets_sent.fetch_add(
                            t.segment_size.map_or(1, |s| ((t.contents.len() + s - 1) / s) as u64),
                            Ordering::Relaxed,
                        );
                        shared.counters.bytes_sent.fetch_add(t.contents.len() as u64, Ordering::Relaxed);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // A packet the OS refused (e.g. an unreachable address): dropped and counted; QUIC
                    // recovers by retransmission.
                    shared.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                    transmits.pop_front();
                }
            }
        }
        if st_dirty(&shared) {
            shared.wake.notify_one();
        }
    }
}

fn st_dirty(shared: &Shared) -> bool {
    shared.lock().any_dirty
}

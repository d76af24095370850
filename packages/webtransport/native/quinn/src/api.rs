//! The engine's N-API surface. Endpoints are numbered handles in a registry; connections are numbered within
//! their endpoint. Events reach JavaScript through one thread-safe function per endpoint, as one Buffer of event
//! records per call (see `engine.rs` for the record layout).
use crate::engine::{self, EndpointOptions, Shared, State};
use crate::napi::*;
use crate::tls;
use quinn_proto::congestion::{BbrConfig, CubicConfig, NewRenoConfig};
use quinn_proto::{ClientConfig, Dir, IdleTimeout, ServerConfig, Side, StreamId, TransportConfig, VarInt};
use std::net::{IpAddr, SocketAddr};
use std::os::raw::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

struct Entry {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    tsfn: usize,
}

static REGISTRY: Mutex<Vec<Option<Entry>>> = Mutex::new(Vec::new());

fn get(h: u64) -> Option<Arc<Shared>> {
    let reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    reg.get(h as usize).and_then(|e| e.as_ref()).map(|e| e.shared.clone())
}

/// Runs `f`, turning a panic or an `Err` into a thrown JS error.
fn guard(env: napi_env, f: impl FnOnce() -> Result<napi_value, String>) -> napi_value {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => throw(env, &e),
        Err(_) => throw(env, "quinn engine: internal error (panic)"),
    }
}

fn arg_u64(env: napi_env, v: napi_value, what: &str) -> Result<u64, String> {
    get_u64(env, v).ok_or_else(|| format!("{what}: a non-negative integer expected"))
}

/// Transport settings, in the order of `QuinnTransportParams` in quinn-engine.ts.
struct Params {
    idle_ms: f64,
    conn_window: f64,
    stream_window: f64,
    max_bidi: f64,
    max_uni: f64,
    dgram_recv_bytes: f64,
    dgram_send_bytes: f64,
    max_udp_payload: f64,
    cc: f64,
    socket_buffer: f64,
    max_connections: f64,
}

fn get_params(env: napi_env, v: napi_value) -> Result<Params, String> {
    let mut kind = 0i32;
    let mut len = 0usize;
    let mut data: *mut c_void = ptr::null_mut();
    let mut ab: napi_value = ptr::null_mut();
    let mut off = 0usize;
    // napi_float64_array = 8
    if unsafe { napi_get_typedarray_info(env, v, &mut kind, &mut len, &mut data, &mut ab, &mut off) } != 0
        || kind != 8
        || len != 11
    {
        return Err("transport parameters: a Float64Array of 11 expected".into());
    }
    let p = unsafe { std::slice::from_raw_parts(data as *const f64, len) };
    Ok(Params {
        idle_ms: p[0],
        conn_window: p[1],
        stream_window: p[2],
        max_bidi: p[3],
        max_uni: p[4],
        dgram_recv_bytes: p[5],
        dgram_send_bytes: p[6],
        max_udp_payload: p[7],
        cc: p[8],
        socket_buffer: p[9],
        max_connections: p[10],
    })
}

fn varint(x: f64) -> VarInt {
    VarInt::from_u64(x.max(0.0) as u64).unwrap_or(VarInt::MAX)
}

fn transport(p: &Params) -> Result<Arc<TransportConfig>, String> {
    let mut t = TransportConfig::default();
    t.max_idle_timeout(Some(
        IdleTimeout::try_from(Duration::from_millis(p.idle_ms.max(0.0) as u64)).map_err(|e| e.to_string())?,
    ));
    t.receive_window(varint(p.conn_window));
    t.stream_receive_window(varint(p.stream_window));
    t.send_window((p.conn_window.max(0.0) as u64).saturating_mul(4));
    t.max_concurrent_bidi_streams(varint(p.max_bidi));
    t.max_concurrent_uni_streams(varint(p.max_uni));
    t.datagram_receive_buffer_size(Some(p.dgram_recv_bytes.max(0.0) as usize));
    t.datagram_send_buffer_size(p.dgram_send_bytes.max(0.0) as usize);
    t.initial_max_udp_payload_size((p.max_udp_payload.clamp(1200.0, 65527.0)) as u16);
    match p.cc as u32 {
        1 => t.congestion_controller_factory(Arc::new(NewRenoConfig::default())),
        2 => t.congestion_controller_factory(Arc::new(BbrConfig::default())),
        _ => t.congestion_controller_factory(Arc::new(CubicConfig::default())),
    };
    Ok(Arc::new(t))
}

extern "C" fn call_js(env: napi_env, js_cb: napi_value, context: *mut c_void, _data: *mut c_void) {
    if env.is_null() || context.is_null() {
        return;
    }
    let shared = unsafe { &*(context as *const Shared) };
    // Cleared before the outbox is taken: a publish in between queues another call (which may find it empty)
    // rather than leaving events behind.
    shared.out_pending.store(false, Ordering::Release);
    let batch = {
        let mut out = shared.outbox.lock().unwrap_or_else(|e| e.into_inner());
        let was_full = out.len() >= engine::OUTBOX_LIMIT;
        let b = std::mem::replace(&mut *out, Vec::new());
        if was_full {
            shared.wake.notify_one();
        }
        b
    };
    if batch.is_empty() {
        return;
    }
    crate::trace::trace!("js takes {} bytes", batch.len());
    let buf = buffer(env, &batch);
    let mut result: napi_value = ptr::null_mut();
    unsafe { napi_call_function(env, undefined(env), js_cb, 1, &buf, &mut result) };
}

extern "C" fn finalize_ctx(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    if !data.is_null() {
        // The strong reference taken for the thread-safe function's context.
        unsafe { drop(Arc::from_raw(data as *const Shared)) };
    }
}

struct SendPtr(usize);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

fn start(
    env: napi_env,
    host: &str,
    port: u16,
    p: &Params,
    server: Option<ServerConfig>,
    client: Option<ClientConfig>,
    preamble: Vec<Vec<u8>>,
    on_events: napi_value,
) -> Result<napi_value, String> {
    let ip: IpAddr = host.parse().map_err(|_| format!("host must be an IP address, got {host}"))?;
    let socket = engine::bind(SocketAddr::new(ip, port), p.socket_buffer.max(0.0) as usize)
        .map_err(|e| format!("bind {host}:{port}: {e}"))?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let opts = EndpointOptions {
        preamble,
        transport: transport(p)?,
        server,
        client,
        max_udp_payload: p.max_udp_payload.clamp(1200.0, 65527.0) as u16,
        socket_buffer: p.socket_buffer as usize,
    };
    let _ = opts.socket_buffer;
    let _ = &opts.transport;
    let state = State::new(&opts);
    let tsfn_cell: Arc<Mutex<SendPtr>> = Arc::new(Mutex::new(SendPtr(0)));
    let cell = tsfn_cell.clone();
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        wake: tokio::sync::Notify::new(),
        outbox: Mutex::new(Vec::new()),
        out_pending: std::sync::atomic::AtomicBool::new(false),
        stop: std::sync::atomic::AtomicBool::new(false),
        local,
        counters: Default::default(),
        notify_js: Box::new(move || {
            let f = cell.lock().unwrap_or_else(|e| e.into_inner()).0;
            if f != 0 {
                // Non-blocking; the queue is unbounded and holds at most one pending call (out_pending).
                unsafe { napi_call_threadsafe_function(f as napi_threadsafe_function, ptr::null_mut(), 0) };
            }
        }),
    });
    let ctx = Arc::into_raw(shared.clone()) as *mut c_void;
    let mut tsfn: napi_threadsafe_function = ptr::null_mut();
    let name = string(env, "quiver-quinn");
    let st = unsafe {
        napi_create_threadsafe_function(
            env,
            on_events,
            ptr::null_mut(),
            name,
            0,
            1,
            ctx,
            Some(finalize_ctx),
            ctx,
            Some(call_js),
            &mut tsfn,
        )
    };
    if st != 0 {
        unsafe { drop(Arc::from_raw(ctx as *const Shared)) };
        return Err("napi_create_threadsafe_function failed".into());
    }
    tsfn_cell.lock().unwrap_or_else(|e| e.into_inner()).0 = tsfn as usize;
    let sh = shared.clone();
    let thread = std::thread::Builder::new()
        .name("quiver-quinn".into())
        .spawn(move || engine::run_thread(sh, socket))
        .map_err(|e| e.to_string())?;
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let entry = Entry { shared, thread: Some(thread), tsfn: tsfn as usize };
    let h = match reg.iter().position(|e| e.is_none()) {
        Some(i) => {
            reg[i] = Some(entry);
            i
        }
        None => {
            reg.push(Some(entry));
            reg.len() - 1
        }
    };
    Ok(number(env, h as f64))
}

/// The server's 0.5-RTT stream contents: repeated (u32 little-endian length, bytes), one per unidirectional
/// stream in the order they are opened. Small by construction (SETTINGS and stream types).
fn parse_preamble(b: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    const MAX_STREAMS: usize = 8;
    const MAX_BYTES: usize = 16 * 1024;
    if b.len() > MAX_BYTES {
        return Err("preamble: at most 16 KiB".into());
    }
    let mut out = Vec::new();
    let mut o = 0;
    while o < b.len() {
        if o + 4 > b.len() || out.len() == MAX_STREAMS {
            return Err("preamble: malformed".into());
        }
        let n = u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize;
        o += 4;
        if n > b.len() - o {
            return Err("preamble: malformed".into());
        }
        out.push(b[o..o + n].to_vec());
        o += n;
    }
    Ok(out)
}

/// createServer(host, port, params: Float64Array, certPem, keyPem, preamble: Uint8Array | null, onEvents) -> handle
extern "C" fn create_server(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<7>(env, info).ok_or("createServer: 7 arguments expected")?;
        let host = get_string(env, a[0]).ok_or("host: string expected")?;
        let port = arg_u64(env, a[1], "port")?;
        let p = get_params(env, a[2])?;
        let cert = get_string(env, a[3]).ok_or("cert: PEM string expected")?;
        let key = get_string(env, a[4]).ok_or("key: PEM string expected")?;
        let crypto = tls::server(&cert, &key)?;
        let mut sc = ServerConfig::with_crypto(Arc::new(crypto));
        sc.transport_config(transport(&p)?);
        sc.concurrent_connections(p.max_connections.clamp(1.0, 1_000_000.0) as u32);
        // Clients may move (RFC 9000 §9): a NAT rebinding or a switch from Wi-Fi to cellular keeps the connection,
        // the new path validated first (§8.2) and the amplification limit applying until it is (§9.3), as the
        // quiche engine's listener allows (`disable_active_migration` off).
        sc.migration(true);
        let preamble = match get_bytes(env, a[5]) {
            Some(b) => parse_preamble(b)?,
            None => Vec::new(),
        };
        start(env, &host, port.min(65535) as u16, &p, Some(sc), None, preamble, a[6])
    })
}

/// createClient(host, params, caPem | null, verifyPeer, ipLiteral, onEvents) -> handle
extern "C" fn create_client(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<6>(env, info).ok_or("createClient: 6 arguments expected")?;
        let host = get_string(env, a[0]).ok_or("host: string expected")?;
        let p = get_params(env, a[1])?;
        let ca = get_string(env, a[2]);
        let verify = get_bool(env, a[3]).unwrap_or(true);
        let ip_literal = get_bool(env, a[4]).unwrap_or(false);
        let crypto = tls::client(ca.as_deref(), verify, ip_literal)?;
        let mut cc = ClientConfig::new(Arc::new(crypto));
        cc.transport_config(transport(&p)?);
        start(env, &host, 0, &p, None, Some(cc), Vec::new(), a[5])
    })
}

fn with_state<T>(h: u64, f: impl FnOnce(&Shared, &mut State) -> T) -> Result<T, String> {
    let sh = get(h).ok_or("quinn endpoint closed")?;
    let mut st = sh.lock();
    Ok(f(&sh, &mut st))
}

/// connect(h, host, port, serverName) -> connection id
extern "C" fn connect(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<4>(env, info).ok_or("connect: 4 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let host = get_string(env, a[1]).ok_or("host: string expected")?;
        let port = arg_u64(env, a[2], "port")?;
        let name = get_string(env, a[3]).ok_or("serverName: string expected")?;
        let ip: IpAddr = host.parse().map_err(|_| "host must be an IP address".to_string())?;
        let id = with_state(h, |_, st| st.connect(SocketAddr::new(ip, port.min(65535) as u16), &name))??;
        Ok(number(env, id as f64))
    })
}

/// kick(h): build and send what JS calls queued (once per JS turn).
extern "C" fn kick(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<1>(env, info).ok_or("kick: 1 argument expected")?;
        if let Some(sh) = get(arg_u64(env, a[0], "handle")?) {
            sh.wake.notify_one();
        }
        Ok(undefined(env))
    })
}

fn local_dir(side: Side, s: StreamId) -> Option<usize> {
    if s.initiator() == side {
        Some(if s.dir() == Dir::Bi { 0 } else { 1 })
    } else {
        None
    }
}

/// write(h, c, stream, data, fin) -> bytes taken (FIN applied only when all were), -1 stopped, -2 gone/closed,
/// -3 no stream credit (RFC 9000 §4.6).
extern "C" fn write(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<5>(env, info).ok_or("write: 5 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let s = StreamId(arg_u64(env, a[2], "stream")?);
        let data = get_bytes(env, a[3]).ok_or("data: Uint8Array expected")?;
        let fin = get_bool(env, a[4]).unwrap_or(false);
        let r = with_state(h, |_, st| {
            let conn = match st.conns.get_mut(&c) {
                Some(x) => x,
                None => return -2.0,
            };
            let r = write_one(conn, s, data, fin);
            st.mark(c);
            r
        })?;
        Ok(number(env, r))
    })
}

fn write_one(conn: &mut engine::Conn, s: StreamId, data: &[u8], fin: bool) -> f64 {
    use quinn_proto::{FinishError, WriteError};
    // A stream `streams_left` opened ahead is this one (or was passed over): it is no longer spare.
    if let Some(d) = local_dir(conn.q.side(), s) {
        if conn.preopened[d].map_or(false, |p| p.0 <= s.0) {
            conn.preopened[d] = None;
        }
    }
    for attempt in 0..2 {
        let res = if data.is_empty() { Ok(0) } else { conn.q.send_stream(s).write(data) };
        let n = match res {
            Ok(n) => n,
            Err(WriteError::Blocked) => 0,
            Err(WriteError::Stopped(_)) => return -1.0,
            Err(WriteError::UnknownStream) => {
                // A new local stream: ids are handed out in order by both the HTTP/3 core and quinn-proto.
                if attempt == 0 {
                    if let Some(d) = local_dir(conn.q.side(), s) {
                        let opened = conn.preopened[d]
                            .take()
                            .or_else(|| conn.q.streams().open(if d == 0 { Dir::Bi } else { Dir::Uni }));
                        match opened {
                            Some(o) if o == s => continue,
                            Some(o) => {
                                conn.preopened[d] = Some(o);
                                return -2.0;
                            }
                            None => return -3.0,
                        }
                    }
                }
                return -2.0;
            }
        };
        if data.is_empty() && fin {
            // Opening check for a FIN-only write on a stream never written: finish() reports UnknownStream.
        }
        if fin && n == data.len() {
            match conn.q.send_stream(s).finish() {
                Ok(()) => {}
                Err(FinishError::Stopped(_)) => return -1.0,
                Err(FinishError::UnknownStream) => {
                    if data.is_empty() && attempt == 0 {
                        if let Some(d) = local_dir(conn.q.side(), s) {
                            let opened = conn.preopened[d]
                                .take()
                                .or_else(|| conn.q.streams().open(if d == 0 { Dir::Bi } else { Dir::Uni }));
                            match opened {
                                Some(o) if o == s => continue,
                                Some(o) => conn.preopened[d] = Some(o),
                                None => return -3.0,
                            }
                        }
                    }
                    return -2.0;
                }
            }
        }
        return n as f64;
    }
    -2.0
}

fn code_arg(env: napi_env, v: napi_value) -> Result<VarInt, String> {
    let c = get_bigint_u64(env, v).ok_or("code: bigint expected")?;
    VarInt::from_u64(c).map_err(|_| "code: above 2^62".to_string())
}

/// resetStream(h, c, stream, code: bigint) (RFC 9000 §19.4)
extern "C" fn reset_stream(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<4>(env, info).ok_or("resetStream: 4 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let s = StreamId(arg_u64(env, a[2], "stream")?);
        let code = code_arg(env, a[3])?;
        with_state(h, |_, st| {
            if let Some(conn) = st.conns.get_mut(&c) {
                let _ = conn.q.send_stream(s).reset(code);
            }
            st.mark(c);
        })?;
        Ok(undefined(env))
    })
}

/// stopSending(h, c, stream, code: bigint) (RFC 9000 §19.5)
extern "C" fn stop_sending(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<4>(env, info).ok_or("stopSending: 4 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let s = StreamId(arg_u64(env, a[2], "stream")?);
        let code = code_arg(env, a[3])?;
        with_state(h, |_, st| {
            if let Some(conn) = st.conns.get_mut(&c) {
                let _ = conn.q.recv_stream(s).stop(code);
            }
            st.set_paused(c, s.0, false);
            st.mark(c);
        })?;
        Ok(undefined(env))
    })
}

/// setPaused(h, c, stream, paused)
extern "C" fn set_paused(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<4>(env, info).ok_or("setPaused: 4 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let s = arg_u64(env, a[2], "stream")?;
        let paused = get_bool(env, a[3]).unwrap_or(false);
        let sh = get(h).ok_or("quinn endpoint closed")?;
        let mut st = sh.lock();
        st.set_paused(c, s, paused);
        // A resumed stream's data was read into the event buffer: hand it over.
        if !paused {
            sh.wake.notify_one();
        }
        Ok(undefined(env))
    })
}

/// sendDatagram(h, c, data) -> 0 queued, 1 no room (congestion), 2 too large, 3 closed or not enabled
extern "C" fn send_datagram(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<3>(env, info).ok_or("sendDatagram: 3 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let data = get_bytes(env, a[2]).ok_or("data: Uint8Array expected")?;
        let r = with_state(h, |_, st| {
            let conn = match st.conns.get_mut(&c) {
                Some(x) => x,
                None => return 3.0,
            };
            let mut d = conn.q.datagrams();
            // quinn-proto drops the oldest queued datagram to make room; we refuse the new one instead, so
            // that every drop is counted by the session (RFC 9221 §5 leaves the choice to the sender).
            if d.send_buffer_space() < data.len() {
                return 1.0;
            }
            let r = match d.send(bytes::Bytes::copy_from_slice(data)) {
                Ok(()) => 0.0,
                Err(quinn_proto::SendDatagramError::TooLarge) => 2.0,
                Err(_) => 3.0,
            };
            st.mark(c);
            r
        })?;
        Ok(number(env, r))
    })
}

/// maxDatagram(h, c) -> bytes (0 when the peer did not enable DATAGRAM frames)
extern "C" fn max_datagram(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<2>(env, info).ok_or("maxDatagram: 2 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let r = with_state(h, |_, st| {
            st.conns.get_mut(&c).and_then(|x| x.q.datagrams().max_size()).unwrap_or(0)
        })?;
        Ok(number(env, r as f64))
    })
}

/// datagramSpace(h, c) -> bytes free in the connection's outgoing datagram buffer (what is queued is the
/// configured size minus this; RFC 9221 §5: DATAGRAM frames wait for the congestion window)
extern "C" fn datagram_space(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<2>(env, info).ok_or("datagramSpace: 2 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let r = with_state(h, |_, st| {
            st.conns.get_mut(&c).map(|x| x.q.datagrams().send_buffer_space()).unwrap_or(0)
        })?;
        Ok(number(env, r as f64))
    })
}

/// pathEstimate(h, c, out: Float64Array(3)) -> 1 when filled, 0 when the connection is gone. Writes the smoothed
/// RTT (ms), the congestion window (bytes) and the free space of the outgoing datagram buffer (bytes) into `out`:
/// what a datagram send estimate needs, asked up to once per datagram sent, so no string and no allocation
/// (`stats` formats JSON).
extern "C" fn path_estimate(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<3>(env, info).ok_or("pathEstimate: 3 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let out = get_f64s(env, a[2]).ok_or("out: a Float64Array of at least 3 expected")?;
        if out.len() < 3 {
            return Err("out: a Float64Array of at least 3 expected".into());
        }
        let r = with_state(h, |_, st| {
            st.conns.get_mut(&c).map(|x| {
                (
                    x.q.rtt().as_secs_f64() * 1000.0,
                    x.q.congestion_state().window() as f64,
                    x.q.datagrams().send_buffer_space() as f64,
                )
            })
        })?;
        Ok(number(
            env,
            match r {
                Some((rtt, cwnd, space)) => {
                    out[0] = rtt;
                    out[1] = cwnd;
                    out[2] = space;
                    1.0
                }
                None => 0.0,
            },
        ))
    })
}

/// streamsLeft(h, c, bidi) -> 1 when one more local stream can be opened now, else 0
extern "C" fn streams_left(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<3>(env, info).ok_or("streamsLeft: 3 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let bidi = get_bool(env, a[2]).unwrap_or(true);
        let r = with_state(h, |_, st| {
            let conn = match st.conns.get_mut(&c) {
                Some(x) => x,
                None => return 0.0,
            };
            let d = if bidi { 0 } else { 1 };
            if conn.preopened[d].is_none() {
                conn.preopened[d] = conn.q.streams().open(if bidi { Dir::Bi } else { Dir::Uni });
            }
            if conn.preopened[d].is_some() {
                1.0
            } else {
                0.0
            }
        })?;
        Ok(number(env, r))
    })
}

/// peerCerts(h, c) -> Buffer[] (leaf first) | null
extern "C" fn peer_certs(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<2>(env, info).ok_or("peerCerts: 2 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let certs: Option<Vec<rustls::Certificate>> = with_state(h, |_, st| {
            st.conns.get(&c).and_then(|x| x.q.crypto_session().peer_identity()).and_then(|any| {
                any.downcast::<Vec<rustls::Certificate>>().ok().map(|b| *b)
            })
        })?;
        let certs = match certs {
            Some(v) => v,
            None => return Ok(null(env)),
        };
        let mut arr: napi_value = ptr::null_mut();
        unsafe { napi_create_array_with_length(env, certs.len(), &mut arr) };
        for (i, cert) in certs.iter().enumerate() {
            let b = buffer(env, &cert.0);
            unsafe { napi_set_element(env, arr, i as u32, b) };
        }
        Ok(arr)
    })
}

/// stats(h, c) -> JSON text | null
extern "C" fn stats(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<2>(env, info).ok_or("stats: 2 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let s = with_state(h, |_, st| {
            st.conns.get(&c).map(|x| {
                let s = x.q.stats();
                format!(
                    "{{\"rttMs\":{},\"cwnd\":{},\"sentPackets\":{},\"lostPackets\":{},\"txBytes\":{},\"rxBytes\":{},\"rxPackets\":{}}}",
                    s.path.rtt.as_secs_f64() * 1000.0,
                    s.path.cwnd,
                    s.path.sent_packets,
                    s.path.lost_packets,
                    s.udp_tx.bytes,
                    s.udp_rx.bytes,
                    s.udp_rx.datagrams
                )
            })
        })?;
        Ok(match s {
            Some(t) => string(env, &t),
            None => null(env),
        })
    })
}

/// remoteAddress(h, c) -> "ip:port" | null
extern "C" fn remote_address(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<2>(env, info).ok_or("remoteAddress: 2 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let s = with_state(h, |_, st| st.conns.get(&c).map(|x| x.q.remote_address().to_string()))?;
        Ok(match s {
            Some(t) => string(env, &t),
            None => null(env),
        })
    })
}

/// close(h, c, code, reason, isApp, abandon) (RFC 9000 §10.2)
extern "C" fn close(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<6>(env, info).ok_or("close: 6 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        let code = arg_u64(env, a[2], "code")?;
        let reason = get_string(env, a[3]).unwrap_or_default();
        let is_app = get_bool(env, a[4]).unwrap_or(true);
        let abandon = get_bool(env, a[5]).unwrap_or(false);
        let sh = get(h).ok_or("quinn endpoint closed")?;
        sh.lock().close(c, code, reason.as_bytes(), is_app, abandon);
        sh.wake.notify_one();
        Ok(undefined(env))
    })
}

/// destroy(h, c): forget the connection without sending anything.
extern "C" fn destroy(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<2>(env, info).ok_or("destroy: 2 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")?;
        let c = arg_u64(env, a[1], "connection")? as u32;
        if let Some(sh) = get(h) {
            sh.lock().remove(c);
        }
        Ok(undefined(env))
    })
}

/// localAddress(h) -> "ip:port"
extern "C" fn local_address(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<1>(env, info).ok_or("localAddress: 1 argument expected")?;
        let sh = get(arg_u64(env, a[0], "handle")?).ok_or("quinn endpoint closed")?;
        Ok(string(env, &sh.local.to_string()))
    })
}

/// counters(h) -> JSON text
extern "C" fn counters(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<1>(env, info).ok_or("counters: 1 argument expected")?;
        let sh = match get(arg_u64(env, a[0], "handle")?) {
            Some(s) => s,
            None => return Ok(null(env)),
        };
        let c = &sh.counters;
        let l = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed);
        let conns = sh.lock().conns.len();
        let t = format!(
            "{{\"packetsReceived\":{},\"bytesReceived\":{},\"packetsSent\":{},\"bytesSent\":{},\"droppedUnknownConnection\":{},\"droppedMalformed\":{},\"droppedRefused\":{},\"sendErrors\":{},\"outboxStalls\":{},\"panics\":{},\"connections\":{}}}",
            l(&c.packets_received),
            l(&c.bytes_received),
            l(&c.packets_sent),
            l(&c.bytes_sent),
            l(&c.dropped_unknown),
            l(&c.dropped_malformed),
            l(&c.dropped_refused),
            l(&c.send_errors),
            l(&c.outbox_stalls),
            l(&c.panics),
            conns
        );
        Ok(string(env, &t))
    })
}

/// holdsProcess(h, yes): whether the endpoint's event callback keeps the Node process alive (it does from
/// creation). A shared client endpoint with no connection left lets the process exit while it lingers.
extern "C" fn holds_process(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<2>(env, info).ok_or("holdsProcess: 2 arguments expected")?;
        let h = arg_u64(env, a[0], "handle")? as usize;
        let yes = get_bool(env, a[1]).unwrap_or(true);
        let reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Some(e)) = reg.get(h) {
            let f = e.tsfn as napi_threadsafe_function;
            unsafe {
                if yes {
                    napi_ref_threadsafe_function(env, f);
                } else {
                    napi_unref_threadsafe_function(env, f);
                }
            }
        }
        Ok(undefined(env))
    })
}

/// closeEndpoint(h): stops the I/O thread (joined), closes the socket, releases the event callback.
extern "C" fn close_endpoint(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let a = args::<1>(env, info).ok_or("closeEndpoint: 1 argument expected")?;
        let h = arg_u64(env, a[0], "handle")? as usize;
        let entry = {
            let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
            reg.get_mut(h).and_then(|e| e.take())
        };
        if let Some(mut e) = entry {
            e.shared.stop.store(true, Ordering::Release);
            e.shared.wake.notify_one();
            if let Some(t) = e.thread.take() {
                let _ = t.join();
            }
            // napi_tsfn_release = 0; the finalizer drops the context's reference.
            unsafe { napi_release_threadsafe_function(e.tsfn as napi_threadsafe_function, 0) };
        }
        Ok(undefined(env))
    })
}

pub fn register(env: napi_env, exports: napi_value) {
    set_fn(env, exports, b"createServer\0", create_server);
    set_fn(env, exports, b"createClient\0", create_client);
    set_fn(env, exports, b"connect\0", connect);
    set_fn(env, exports, b"kick\0", kick);
    set_fn(env, exports, b"write\0", write);
    set_fn(env, exports, b"resetStream\0", reset_stream);
    set_fn(env, exports, b"stopSending\0", stop_sending);
    set_fn(env, exports, b"setPaused\0", set_paused);
    set_fn(env, exports, b"sendDatagram\0", send_datagram);
    set_fn(env, exports, b"maxDatagram\0", max_datagram);
    set_fn(env, exports, b"datagramSpace\0", datagram_space);
    set_fn(env, exports, b"pathEstimate\0", path_estimate);
    set_fn(env, exports, b"streamsLeft\0", streams_left);
    set_fn(env, exports, b"peerCerts\0", peer_certs);
    set_fn(env, exports, b"stats\0", stats);
    set_fn(env, exports, b"remoteAddress\0", remote_address);
    set_fn(env, exports, b"close\0", close);
    set_fn(env, exports, b"destroy\0", destroy);
    set_fn(env, exports, b"localAddress\0", local_address);
    set_fn(env, exports, b"counters\0", counters);
    set_fn(env, exports, b"closeEndpoint\0", close_endpoint);
    set_fn(env, exports, b"holdsProcess\0", holds_process);
    let _ = c_char::default();
}

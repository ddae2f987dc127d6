//! The C ABI of Shoal: `libshoal` (a static and a shared library) and `include/shoal.h`,
//! which cbindgen generates from this file (a test checks the committed header is current).
//!
//! # Layout
//!
//! ```text
//! lib.rs    every exported function: nodes (open, close), commands (exec and the reply
//!           tree, get/set/del), replication, pub/sub callbacks, errors and the version
//! ```
//!
//! Rules every function follows: a panic never crosses into C (it becomes
//! `SHOAL_ERR_PANIC`); NULL pointers and impossible lengths are refused with
//! `SHOAL_ERR_ARGUMENT`; a failure leaves a message for `shoal_last_error()` on the calling
//! thread. Handles are checked against the live ones, so a closed or double-closed node is an
//! error (`SHOAL_ERR_CLOSED`), not a crash.

#![allow(clippy::missing_safety_doc)]
// The C names (shoal_status, SHOAL_OK, ...) are the API: C naming on purpose.
#![allow(non_camel_case_types)]

use shoal_core::{Config, Message, Node, Reply, Subscription};
use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_longlong, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

/// What a call returned.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum shoal_status {
    /// It worked.
    SHOAL_OK = 0,
    /// A NULL pointer, a negative or impossible length, or bad UTF-8 where text is needed.
    SHOAL_ERR_ARGUMENT = 1,
    /// The configuration was refused (the message says which directive and why).
    SHOAL_ERR_CONFIG = 2,
    /// The node could not do it (I/O, a refused command, a missing key for a typed call).
    SHOAL_ERR_FAILED = 3,
    /// The handle is not an open node (never opened, or closed already).
    SHOAL_ERR_CLOSED = 4,
    /// Shoal panicked; the node may be unusable.
    SHOAL_ERR_PANIC = 5,
    /// GET found no value.
    SHOAL_NOT_FOUND = 6,
}

use shoal_status::*;

/// An open node. Opaque: use it only through these functions.
pub struct shoal_node {
    node: Node,
}

/// The kinds of reply.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum shoal_reply_type {
    SHOAL_REPLY_NIL = 0,
    SHOAL_REPLY_INTEGER = 1,
    SHOAL_REPLY_DOUBLE = 2,
    SHOAL_REPLY_BULK = 3,
    SHOAL_REPLY_STATUS = 4,
    SHOAL_REPLY_ERROR = 5,
    SHOAL_REPLY_ARRAY = 6,
    SHOAL_REPLY_MAP = 7,
    SHOAL_REPLY_SET = 8,
    SHOAL_REPLY_PUSH = 9,
    SHOAL_REPLY_BOOLEAN = 10,
    SHOAL_REPLY_BIGNUM = 11,
    SHOAL_REPLY_VERBATIM = 12,
}

/// A command's reply, a tree freed as a whole by `shoal_reply_free`.
///
/// `str`/`len` hold the text of BULK, STATUS, ERROR, VERBATIM and BIGNUM replies (not
/// NUL-terminated inside binary data, but always followed by a NUL byte). `integer` holds
/// INTEGER and BOOLEAN (0 or 1), `dval` DOUBLE. ARRAY, SET and PUSH have `elements`
/// children; MAP has `2 * elements` children, key then value.
#[repr(C)]
pub struct shoal_reply {
    pub r#type: shoal_reply_type,
    pub integer: c_longlong,
    pub dval: f64,
    pub str: *mut c_char,
    pub len: usize,
    pub elements: usize,
    pub element: *mut *mut shoal_reply,
}

/// Called with each message of a subscription, on a Shoal thread (never the caller's),
/// one message at a time per subscription: the channel, the payload, and `user_data` as
/// given. The buffers are valid only during the call.
pub type shoal_message_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        channel: *const c_char,
        channel_len: usize,
        payload: *const c_char,
        payload_len: usize,
    ),
>;

/// A subscription delivering to a callback. Opaque.
pub struct shoal_subscription {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Open nodes, by address: a pointer not in here is refused rather than dereferenced.
static LIVE: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

fn fail(status: shoal_status, message: impl Into<String>) -> shoal_status {
    let text = message.into().replace('\0', " ");
    LAST_ERROR.with(|e| *e.borrow_mut() = CString::new(text).unwrap_or_default());
    status
}

/// Runs `f`, turning a panic into `SHOAL_ERR_PANIC` (or `on_panic` for pointer returns).
fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        fail(SHOAL_ERR_PANIC, "Shoal panicked");
        on_panic
    })
}

fn is_live(node: *const shoal_node) -> bool {
    LIVE.lock()
        .map(|live| live.as_ref().is_some_and(|l| l.contains(&(node as usize))))
        .unwrap_or(false)
}

/// The node behind a handle, if it is open.
unsafe fn node_ref<'a>(node: *const shoal_node) -> Result<&'a Node, shoal_status> {
    if node.is_null() {
        return Err(fail(SHOAL_ERR_ARGUMENT, "node is NULL"));
    }
    if !is_live(node) {
        return Err(fail(SHOAL_ERR_CLOSED, "node is not open (closed already?)"));
    }
    // SAFETY: the pointer is one `shoal_open` returned and `shoal_close` has not freed.
    Ok(unsafe { &(*node).node })
}

/// `len` bytes at `ptr` (NULL is fine when `len` is 0).
unsafe fn bytes<'a>(ptr: *const c_char, len: usize, what: &str) -> Result<&'a [u8], shoal_status> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(fail(SHOAL_ERR_ARGUMENT, format!("{what} is NULL")));
    }
    if len > isize::MAX as usize {
        return Err(fail(
            SHOAL_ERR_ARGUMENT,
            format!("{what} length is impossible"),
        ));
    }
    // SAFETY: the caller promises `len` readable bytes at `ptr`.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// The message of the last failed call on this thread ("" if none). Valid until the next
/// call on this thread; do not free it.
#[no_mangle]
pub extern "C" fn shoal_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Shoal's version, e.g. "0.1.0" (static; do not free).
#[no_mangle]
pub extern "C" fn shoal_version() -> *const c_char {
    static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// Opens a node configured by `config` (`config_len` bytes of redis.conf-style text:
/// `port 6379`, `cluster-enabled yes`, `replicaof 10.0.0.1 6379`...; NULL or empty for the
/// embedded defaults: no listener, nothing on disk). A `port` starts the RESP listener.
/// Returns NULL on failure (see `shoal_last_error`). Close it with `shoal_close`; it may be
/// used from any thread meanwhile.
#[no_mangle]
pub unsafe extern "C" fn shoal_open(config: *const c_char, config_len: usize) -> *mut shoal_node {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `config_len` readable bytes, as documented.
        let Ok(text) = (unsafe { bytes(config, config_len, "config") }) else {
            return std::ptr::null_mut();
        };
        let Ok(text) = std::str::from_utf8(text) else {
            fail(SHOAL_ERR_ARGUMENT, "config is not UTF-8");
            return std::ptr::null_mut();
        };
        let mut settings = Config::new();
        if let Err(e) = shoal_core::config::file::apply_text(&mut settings, text) {
            fail(SHOAL_ERR_CONFIG, e.to_string());
            return std::ptr::null_mut();
        }
        match Node::open(settings) {
            Ok(node) => {
                let handle = Box::into_raw(Box::new(shoal_node { node }));
                if let Ok(mut live) = LIVE.lock() {
                    live.get_or_insert_with(HashSet::new)
                        .insert(handle as usize);
                }
                handle
            }
            Err(e) => {
                fail(SHOAL_ERR_FAILED, e.to_string());
                std::ptr::null_mut()
            }
        }
    })
}

/// Opens a node configured by `count` directives given as name/value pairs (`names[i]`
/// `values[i]`, NUL-terminated: `"port"`, `"6379"`); values are quoted as needed, so they
/// may hold spaces. Otherwise as `shoal_open`.
#[no_mangle]
pub unsafe extern "C" fn shoal_open_pairs(
    names: *const *const c_char,
    values: *const *const c_char,
    count: usize,
) -> *mut shoal_node {
    guard(std::ptr::null_mut(), || {
        if count > 0 && (names.is_null() || values.is_null()) {
            fail(SHOAL_ERR_ARGUMENT, "names or values is NULL");
            return std::ptr::null_mut();
        }
        if count > 1 << 20 {
            fail(SHOAL_ERR_ARGUMENT, "count is impossible");
            return std::ptr::null_mut();
        }
        let mut text = String::new();
        for i in 0..count {
            // SAFETY: `count` entries in both arrays, as documented.
            let (name, value) = unsafe { (*names.add(i), *values.add(i)) };
            if name.is_null() || value.is_null() {
                fail(SHOAL_ERR_ARGUMENT, format!("name or value {i} is NULL"));
                return std::ptr::null_mut();
            }
            // SAFETY: NUL-terminated strings, as documented.
            let (name, value) = unsafe { (CStr::from_ptr(name), CStr::from_ptr(value)) };
            let Ok(name) = name.to_str() else {
                fail(SHOAL_ERR_ARGUMENT, format!("name {i} is not UTF-8"));
                return std::ptr::null_mut();
            };
            text.push_str(name);
            text.push(' ');
            text.push_str(&shoal_core::config::file::quote(value.to_bytes()));
            text.push('\n');
        }
        // SAFETY: `text` is `text.len()` readable bytes.
        unsafe { shoal_open(text.as_ptr().cast(), text.len()) }
    })
}

/// Closes a node (saving what its configuration says to save). Closing NULL, or a node
/// closed already, returns an error and does nothing else.
#[no_mangle]
pub unsafe extern "C" fn shoal_close(node: *mut shoal_node) -> shoal_status {
    guard(SHOAL_ERR_PANIC, || {
        if node.is_null() {
            return fail(SHOAL_ERR_ARGUMENT, "node is NULL");
        }
        let removed = LIVE
            .lock()
            .map(|mut live| live.as_mut().is_some_and(|l| l.remove(&(node as usize))))
            .unwrap_or(false);
        if !removed {
            return fail(SHOAL_ERR_CLOSED, "node is not open (closed already?)");
        }
        // SAFETY: it was live: a pointer from `shoal_open`, now removed, so freed once.
        drop(unsafe { Box::from_raw(node) });
        SHOAL_OK
    })
}

/// Runs a command: `argc` arguments, `argv[i]` of `argvlen[i]` bytes (binary-safe). Returns
/// the reply (free it with `shoal_reply_free`; a command error is an ERROR reply), or NULL
/// when the call itself failed (see `shoal_last_error`). Blocking commands block the caller.
#[no_mangle]
pub unsafe extern "C" fn shoal_exec(
    node: *mut shoal_node,
    argc: c_int,
    argv: *const *const c_char,
    argvlen: *const usize,
) -> *mut shoal_reply {
    guard(std::ptr::null_mut(), || {
        // SAFETY: checked against the live handles.
        let Ok(node) = (unsafe { node_ref(node) }) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `argc` pointers and lengths, as documented.
        let Ok(args) = (unsafe { arguments(argc, argv, argvlen) }) else {
            return std::ptr::null_mut();
        };
        convert(&node.execute(&args))
    })
}

unsafe fn arguments<'a>(
    argc: c_int,
    argv: *const *const c_char,
    argvlen: *const usize,
) -> Result<Vec<&'a [u8]>, shoal_status> {
    if argc <= 0 {
        return Err(fail(SHOAL_ERR_ARGUMENT, "argc must be at least 1"));
    }
    if argv.is_null() || argvlen.is_null() {
        return Err(fail(SHOAL_ERR_ARGUMENT, "argv or argvlen is NULL"));
    }
    let count = argc as usize;
    // SAFETY: the caller promises `argc` entries in both arrays.
    let (ptrs, lens) = unsafe {
        (
            std::slice::from_raw_parts(argv, count),
            std::slice::from_raw_parts(argvlen, count),
        )
    };
    ptrs.iter()
        .zip(lens)
        // SAFETY: each argument has its length's readable bytes.
        .map(|(&p, &len)| unsafe { bytes(p, len, "an argument") })
        .collect()
}

/// A reply as a heap tree for C.
fn convert(reply: &Reply) -> *mut shoal_reply {
    use shoal_reply_type::*;
    let mut out = shoal_reply {
        r#type: SHOAL_REPLY_NIL,
        integer: 0,
        dval: 0.0,
        str: std::ptr::null_mut(),
        len: 0,
        elements: 0,
        element: std::ptr::null_mut(),
    };
    let text = |out: &mut shoal_reply, kind, bytes: &[u8]| {
        out.r#type = kind;
        out.len = bytes.len();
        let mut owned = Vec::with_capacity(bytes.len() + 1);
        owned.extend_from_slice(bytes);
        owned.push(0);
        out.str = Box::into_raw(owned.into_boxed_slice()).cast();
    };
    let children = |out: &mut shoal_reply, kind, items: Vec<&Reply>, pairs: bool| {
        out.r#type = kind;
        out.elements = if pairs { items.len() / 2 } else { items.len() };
        let list: Box<[*mut shoal_reply]> = items.into_iter().map(convert).collect();
        out.element = Box::into_raw(list).cast();
    };
    match reply {
        Reply::Nil | Reply::NilArray => {}
        Reply::Int(n) => {
            out.r#type = SHOAL_REPLY_INTEGER;
            out.integer = *n;
        }
        Reply::Double(d) => {
            out.r#type = SHOAL_REPLY_DOUBLE;
            out.dval = *d;
        }
        Reply::Bool(b) => {
            out.r#type = SHOAL_REPLY_BOOLEAN;
            out.integer = c_longlong::from(*b);
        }
        Reply::Bulk(b) => text(&mut out, SHOAL_REPLY_BULK, b),
        Reply::Verbatim(b) => text(&mut out, SHOAL_REPLY_VERBATIM, b),
        Reply::Status(s) => text(&mut out, SHOAL_REPLY_STATUS, s.as_bytes()),
        Reply::Error(s) => text(&mut out, SHOAL_REPLY_ERROR, s.as_bytes()),
        Reply::Array(items) | Reply::Several(items) => {
            children(&mut out, SHOAL_REPLY_ARRAY, items.iter().collect(), false)
        }
        Reply::Set(items) => children(&mut out, SHOAL_REPLY_SET, items.iter().collect(), false),
        Reply::Push(items) => children(&mut out, SHOAL_REPLY_PUSH, items.iter().collect(), false),
        Reply::Map(pairs) => {
            let flat = pairs.iter().flat_map(|(k, v)| [k, v]).collect();
            children(&mut out, SHOAL_REPLY_MAP, flat, true)
        }
    }
    Box::into_raw(Box::new(out))
}

/// Frees a reply and everything in it. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn shoal_reply_free(reply: *mut shoal_reply) {
    guard((), || {
        if reply.is_null() {
            return;
        }
        // SAFETY: a tree `convert` built, freed once by its owner.
        let reply = unsafe { Box::from_raw(reply) };
        if !reply.str.is_null() {
            let slice = std::ptr::slice_from_raw_parts_mut(reply.str.cast::<u8>(), reply.len + 1);
            // SAFETY: allocated as a boxed slice of `len + 1` bytes.
            drop(unsafe { Box::from_raw(slice) });
        }
        if !reply.element.is_null() {
            let count = match reply.r#type {
                shoal_reply_type::SHOAL_REPLY_MAP => reply.elements * 2,
                _ => reply.elements,
            };
            let slice = std::ptr::slice_from_raw_parts_mut(reply.element, count);
            // SAFETY: allocated as a boxed slice of `count` children.
            let children = unsafe { Box::from_raw(slice) };
            for &child in children.iter() {
                // SAFETY: each child is a tree of its own.
                unsafe { shoal_reply_free(child) };
            }
        }
    });
}

/// SET key value. `SHOAL_OK` or an error.
#[no_mangle]
pub unsafe extern "C" fn shoal_set(
    node: *mut shoal_node,
    key: *const c_char,
    key_len: usize,
    value: *const c_char,
    value_len: usize,
) -> shoal_status {
    guard(SHOAL_ERR_PANIC, || {
        // SAFETY: as documented for each pointer.
        let run = || unsafe {
            let node = node_ref(node)?;
            let key = bytes(key, key_len, "key")?;
            let value = bytes(value, value_len, "value")?;
            node.set(key, value)
                .map_err(|e| fail(SHOAL_ERR_FAILED, e.to_string()))
        };
        run().err().unwrap_or(SHOAL_OK)
    })
}

/// GET key: on `SHOAL_OK`, `*value` points to a copy of the value (`*value_len` bytes,
/// NUL-terminated) to free with `shoal_free`; `SHOAL_NOT_FOUND` when there is none.
#[no_mangle]
pub unsafe extern "C" fn shoal_get(
    node: *mut shoal_node,
    key: *const c_char,
    key_len: usize,
    value: *mut *mut c_char,
    value_len: *mut usize,
) -> shoal_status {
    guard(SHOAL_ERR_PANIC, || {
        if value.is_null() || value_len.is_null() {
            return fail(SHOAL_ERR_ARGUMENT, "value or value_len is NULL");
        }
        // SAFETY: as documented for each pointer.
        let found = unsafe {
            node_ref(node).and_then(|node| {
                let key = bytes(key, key_len, "key")?;
                node.get(key)
                    .map_err(|e| fail(SHOAL_ERR_FAILED, e.to_string()))
            })
        };
        match found {
            Err(status) => status,
            Ok(None) => SHOAL_NOT_FOUND,
            Ok(Some(bytes)) => {
                let mut owned = bytes.to_vec();
                let len = owned.len();
                owned.push(0);
                // SAFETY: checked non-NULL above; the caller owns the copy.
                unsafe {
                    *value_len = len;
                    *value = Box::into_raw(owned.into_boxed_slice()).cast();
                }
                SHOAL_OK
            }
        }
    })
}

/// Frees a value `shoal_get` returned (`len` as it said). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn shoal_free(value: *mut c_char, len: usize) {
    if value.is_null() {
        return;
    }
    let slice = std::ptr::slice_from_raw_parts_mut(value.cast::<u8>(), len + 1);
    // SAFETY: allocated by `shoal_get` as a boxed slice of `len + 1` bytes.
    drop(unsafe { Box::from_raw(slice) });
}

/// DEL key: `*deleted` (if not NULL) is set to 1 if it existed, else 0.
#[no_mangle]
pub unsafe extern "C" fn shoal_del(
    node: *mut shoal_node,
    key: *const c_char,
    key_len: usize,
    deleted: *mut c_int,
) -> shoal_status {
    guard(SHOAL_ERR_PANIC, || {
        // SAFETY: as documented for each pointer.
        let result = unsafe {
            node_ref(node).and_then(|node| {
                let key = bytes(key, key_len, "key")?;
                Ok(node.execute(&[&b"DEL"[..], key]))
            })
        };
        match result {
            Err(status) => status,
            Ok(Reply::Int(n)) => {
                if !deleted.is_null() {
                    // SAFETY: a caller-provided int.
                    unsafe { *deleted = c_int::from(n > 0) };
                }
                SHOAL_OK
            }
            Ok(other) => fail(SHOAL_ERR_FAILED, format!("DEL replied {other:?}")),
        }
    })
}

/// Makes the node a replica of the node whose replication (QUIC) address is `addr`
/// ("host:port", NUL-terminated): the address `port + 10000` of a `shoal-server`, or the
/// `bus-addr` of an embedded node. Returns at once; the sync goes on in the background.
#[no_mangle]
pub unsafe extern "C" fn shoal_replicate_from(
    node: *mut shoal_node,
    addr: *const c_char,
) -> shoal_status {
    guard(SHOAL_ERR_PANIC, || {
        if addr.is_null() {
            return fail(SHOAL_ERR_ARGUMENT, "addr is NULL");
        }
        // SAFETY: a NUL-terminated string, as documented; the node is checked.
        let (node, text) = match unsafe { (node_ref(node), CStr::from_ptr(addr)) } {
            (Ok(node), text) => (node, text),
            (Err(status), _) => return status,
        };
        let Some(socket) = text.to_str().ok().and_then(|t| t.parse().ok()) else {
            return fail(SHOAL_ERR_ARGUMENT, "addr is not host:port");
        };
        match node.replicate_from(socket) {
            Ok(()) => SHOAL_OK,
            Err(e) => fail(SHOAL_ERR_FAILED, e.to_string()),
        }
    })
}

/// Stops following a primary and accepts writes (REPLICAOF NO ONE).
#[no_mangle]
pub unsafe extern "C" fn shoal_promote(node: *mut shoal_node) -> shoal_status {
    guard(SHOAL_ERR_PANIC, || {
        // SAFETY: checked against the live handles.
        match unsafe { node_ref(node) }.map(|n| n.promote()) {
            Err(status) => status,
            Ok(Ok(())) => SHOAL_OK,
            Ok(Err(e)) => fail(SHOAL_ERR_FAILED, e.to_string()),
        }
    })
}

/// What a subscription listens to.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum shoal_subscription_kind {
    /// A channel (SUBSCRIBE).
    SHOAL_CHANNEL = 0,
    /// A glob pattern over channels (PSUBSCRIBE); the callback gets the actual channel.
    SHOAL_PATTERN = 1,
    /// A shard channel (SSUBSCRIBE, messages from SPUBLISH).
    SHOAL_SHARD_CHANNEL = 2,
}

/// Subscribes to `name` (`name_len` bytes), a channel, pattern or shard channel as `kind`
/// says: `callback` gets each message published from now on, on a thread of the
/// subscription's own, in order. `*out` receives the subscription, to end with
/// `shoal_unsubscribe` (which waits for a callback in progress). A subscriber that falls far
/// behind (past `client-output-buffer-limit pubsub`) is dropped.
#[no_mangle]
pub unsafe extern "C" fn shoal_subscribe(
    node: *mut shoal_node,
    kind: shoal_subscription_kind,
    name: *const c_char,
    name_len: usize,
    callback: shoal_message_fn,
    user_data: *mut c_void,
    out: *mut *mut shoal_subscription,
) -> shoal_status {
    guard(SHOAL_ERR_PANIC, || {
        let Some(callback) = callback else {
            return fail(SHOAL_ERR_ARGUMENT, "callback is NULL");
        };
        if out.is_null() {
            return fail(SHOAL_ERR_ARGUMENT, "out is NULL");
        }
        // SAFETY: as documented for each pointer.
        let subscription = match unsafe { node_ref(node) }.and_then(|node| {
            let name = unsafe { bytes(name, name_len, "name") }?;
            Ok(match kind {
                shoal_subscription_kind::SHOAL_CHANNEL => node.subscribe(&[name]),
                shoal_subscription_kind::SHOAL_PATTERN => node.psubscribe(&[name]),
                shoal_subscription_kind::SHOAL_SHARD_CHANNEL => node.ssubscribe(&[name]),
            })
        }) {
            Ok(s) => s,
            Err(status) => return status,
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let user = UserData(user_data);
        let thread = {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::Builder::new()
                .name("shoal-subscriber".into())
                .spawn(move || deliver(subscription, callback, user, &stop))
        };
        let Ok(thread) = thread else {
            return fail(
                SHOAL_ERR_FAILED,
                "could not start the subscription's thread",
            );
        };
        let handle = Box::new(shoal_subscription {
            stop,
            thread: Some(thread),
        });
        // SAFETY: checked non-NULL above.
        unsafe { *out = Box::into_raw(handle) };
        SHOAL_OK
    })
}

/// The caller's pointer, handed to its callback on the subscription's thread.
struct UserData(*mut c_void);
// SAFETY: the header documents that the callback runs on a Shoal thread: the caller
// chose to hand this pointer there.
unsafe impl Send for UserData {}

type Callback = unsafe extern "C" fn(*mut c_void, *const c_char, usize, *const c_char, usize);

fn deliver(
    subscription: Subscription,
    callback: Callback,
    user: UserData,
    stop: &std::sync::atomic::AtomicBool,
) {
    let tick = std::time::Duration::from_millis(50);
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        match subscription.recv_timeout(tick) {
            Ok(Some(message)) => call(callback, &user, &message),
            Ok(None) => {}
            Err(_) => return,
        }
    }
}

fn call(callback: Callback, user: &UserData, message: &Message) {
    let (channel, payload) = (message.channel(), message.payload());
    // A panic cannot come from C; the callback's own faults are the caller's.
    // SAFETY: the buffers live for the call, as documented.
    unsafe {
        callback(
            user.0,
            channel.as_ptr().cast(),
            channel.len(),
            payload.as_ptr().cast(),
            payload.len(),
        )
    };
}

/// Ends a subscription: no callback runs after this returns. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn shoal_unsubscribe(subscription: *mut shoal_subscription) {
    guard((), || {
        if subscription.is_null() {
            return;
        }
        // SAFETY: a pointer `shoal_subscribe` returned, ended once by its owner.
        let mut subscription = unsafe { Box::from_raw(subscription) };
        subscription
            .stop
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = subscription.thread.take() {
            let _ = thread.join();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(node: *mut shoal_node, args: &[&str]) -> *mut shoal_reply {
        let ptrs: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
        let lens: Vec<usize> = args.iter().map(|a| a.len()).collect();
        unsafe { shoal_exec(node, args.len() as c_int, ptrs.as_ptr(), lens.as_ptr()) }
    }

    #[test]
    fn bad_input_is_an_error_not_a_crash() {
        unsafe {
            assert!(
                shoal_exec(std::ptr::null_mut(), 1, std::ptr::null(), std::ptr::null()).is_null()
            );
            let node = shoal_open(std::ptr::null(), 0);
            assert!(!node.is_null());
            assert!(shoal_exec(node, 0, std::ptr::null(), std::ptr::null()).is_null());
            assert!(shoal_exec(node, -3, std::ptr::null(), std::ptr::null()).is_null());
            let reply = exec(node, &["SET", "k", "v"]);
            assert_eq!((*reply).r#type, shoal_reply_type::SHOAL_REPLY_STATUS);
            shoal_reply_free(reply);
            let reply = exec(node, &["HELLO", "3"]);
            assert_eq!((*reply).r#type, shoal_reply_type::SHOAL_REPLY_MAP);
            shoal_reply_free(reply);
            shoal_reply_free(std::ptr::null_mut());
            assert_eq!(shoal_close(node), SHOAL_OK);
            assert_eq!(shoal_close(node), SHOAL_ERR_CLOSED);
            assert!(exec(node, &["PING"]).is_null());
            assert_eq!(shoal_close(std::ptr::null_mut()), SHOAL_ERR_ARGUMENT);
            let bad = b"port notanumber";
            assert!(shoal_open(bad.as_ptr().cast(), bad.len()).is_null());
            let message = CStr::from_ptr(shoal_last_error()).to_string_lossy();
            assert!(message.contains("port"), "{message}");
        }
    }
}

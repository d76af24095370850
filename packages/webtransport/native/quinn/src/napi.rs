//! The few N-API functions the addon uses, declared from Node's `node_api.h` (stable ABI, N-API version 1).
use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::ptr;

pub type napi_env = *mut c_void;
pub type napi_value = *mut c_void;
pub type napi_callback_info = *mut c_void;
pub type napi_status = i32;
pub type napi_callback = extern "C" fn(napi_env, napi_callback_info) -> napi_value;

extern "C" {
    pub fn napi_create_function(
        env: napi_env,
        utf8name: *const c_char,
        length: usize,
        cb: napi_callback,
        data: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_set_named_property(
        env: napi_env,
        object: napi_value,
        utf8name: *const c_char,
        value: napi_value,
    ) -> napi_status;
    pub fn napi_create_string_utf8(
        env: napi_env,
        s: *const c_char,
        length: usize,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_get_cb_info(
        env: napi_env,
        info: napi_callback_info,
        argc: *mut usize,
        argv: *mut napi_value,
        this_arg: *mut napi_value,
        data: *mut *mut c_void,
    ) -> napi_status;
    pub fn napi_get_value_string_utf8(
        env: napi_env,
        value: napi_value,
        buf: *mut c_char,
        bufsize: usize,
        result: *mut usize,
    ) -> napi_status;
    pub fn napi_throw_error(env: napi_env, code: *const c_char, msg: *const c_char) -> napi_status;
}

const NAPI_OK: napi_status = 0;

pub fn string(env: napi_env, s: &str) -> napi_value {
    let mut v: napi_value = ptr::null_mut();
    unsafe { napi_create_string_utf8(env, s.as_ptr() as *const c_char, s.len(), &mut v) };
    v
}

pub fn throw(env: napi_env, msg: &str) -> napi_value {
    let m = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    unsafe { napi_throw_error(env, ptr::null(), m.as_ptr()) };
    ptr::null_mut()
}

/// Exactly N arguments, or None.
pub fn args<const N: usize>(env: napi_env, info: napi_callback_info) -> Option<[napi_value; N]> {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    let st = unsafe {
        napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut())
    };
    if st != NAPI_OK || argc < N {
        return None;
    }
    Some(argv)
}

/// A JS string as UTF-8; at most 1 MiB (certificates and keys), else None.
pub fn get_string(env: napi_env, v: napi_value) -> Option<String> {
    let mut len = 0usize;
    if unsafe { napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len) } != NAPI_OK || len > 1 << 20 {
        return None;
    }
    let mut buf = vec![0u8; len + 1];
    let mut got = 0usize;
    if unsafe { napi_get_value_string_utf8(env, v, buf.as_mut_ptr() as *mut c_char, len + 1, &mut got) } != NAPI_OK {
        return None;
    }
    buf.truncate(got);
    String::from_utf8(buf).ok()
}

// --- used by the engine (engine.rs) ---

pub type napi_threadsafe_function = *mut c_void;
pub type napi_finalize = Option<extern "C" fn(napi_env, *mut c_void, *mut c_void)>;
pub type napi_threadsafe_function_call_js = Option<extern "C" fn(napi_env, napi_value, *mut c_void, *mut c_void)>;

extern "C" {
    pub fn napi_get_value_double(env: napi_env, value: napi_value, result: *mut f64) -> napi_status;
    pub fn napi_get_value_bool(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    pub fn napi_get_value_bigint_uint64(
        env: napi_env,
        value: napi_value,
        result: *mut u64,
        lossless: *mut bool,
    ) -> napi_status;
    pub fn napi_create_double(env: napi_env, value: f64, result: *mut napi_value) -> napi_status;
    pub fn napi_get_null(env: napi_env, result: *mut napi_value) -> napi_status;
    pub fn napi_get_undefined(env: napi_env, result: *mut napi_value) -> napi_status;
    pub fn napi_get_typedarray_info(
        env: napi_env,
        typedarray: napi_value,
        kind: *mut i32,
        length: *mut usize,
        data: *mut *mut c_void,
        arraybuffer: *mut napi_value,
        byte_offset: *mut usize,
    ) -> napi_status;
    pub fn napi_create_buffer_copy(
        env: napi_env,
        length: usize,
        data: *const c_void,
        result_data: *mut *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_create_array_with_length(env: napi_env, length: usize, result: *mut napi_value) -> napi_status;
    pub fn napi_set_element(env: napi_env, object: napi_value, index: u32, value: napi_value) -> napi_status;
    pub fn napi_call_function(
        env: napi_env,
        recv: napi_value,
        func: napi_value,
        argc: usize,
        argv: *const napi_value,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_create_threadsafe_function(
        env: napi_env,
        func: napi_value,
        async_resource: napi_value,
        async_resource_name: napi_value,
        max_queue_size: usize,
        initial_thread_count: usize,
        thread_finalize_data: *mut c_void,
        thread_finalize_cb: napi_finalize,
        context: *mut c_void,
        call_js_cb: napi_threadsafe_function_call_js,
        result: *mut napi_threadsafe_function,
    ) -> napi_status;
    pub fn napi_call_threadsafe_function(func: napi_threadsafe_function, data: *mut c_void, is_blocking: i32)
        -> napi_status;
    pub fn napi_release_threadsafe_function(func: napi_threadsafe_function, mode: i32) -> napi_status;
    pub fn napi_ref_threadsafe_function(env: napi_env, func: napi_threadsafe_function) -> napi_status;
    pub fn napi_unref_threadsafe_function(env: napi_env, func: napi_threadsafe_function) -> napi_status;
}

pub fn get_f64(env: napi_env, v: napi_value) -> Option<f64> {
    let mut r = 0f64;
    if v.is_null() || unsafe { napi_get_value_double(env, v, &mut r) } != NAPI_OK {
        return None;
    }
    Some(r)
}

/// A non-negative integer that fits a JS number exactly.
pub fn get_u64(env: napi_env, v: napi_value) -> Option<u64> {
    let f = get_f64(env, v)?;
    if f >= 0.0 && f <= 9007199254740991.0 && f.fract() == 0.0 {
        Some(f as u64)
    } else {
        None
    }
}

pub fn get_bool(env: napi_env, v: napi_value) -> Option<bool> {
    let mut r = false;
    if v.is_null() || unsafe { napi_get_value_bool(env, v, &mut r) } != NAPI_OK {
        return None;
    }
    Some(r)
}

pub fn get_bigint_u64(env: napi_env, v: napi_value) -> Option<u64> {
    let mut r = 0u64;
    let mut lossless = false;
    if v.is_null() || unsafe { napi_get_value_bigint_uint64(env, v, &mut r, &mut lossless) } != NAPI_OK || !lossless {
        return None;
    }
    Some(r)
}

/// The bytes of a TypedArray (a Uint8Array or Buffer), borrowed for the duration of the call.
pub fn get_bytes<'a>(env: napi_env, v: napi_value) -> Option<&'a [u8]> {
    let mut kind = 0i32;
    let mut len = 0usize;
    let mut data: *mut c_void = ptr::null_mut();
    let mut ab: napi_value = ptr::null_mut();
    let mut off = 0usize;
    if v.is_null()
        || unsafe { napi_get_typedarray_info(env, v, &mut kind, &mut len, &mut data, &mut ab, &mut off) } != NAPI_OK
    {
        return None;
    }
    // napi_uint8_array = 1 (Buffers are Uint8Arrays).
    if kind != 1 {
        return None;
    }
    if len == 0 {
        return Some(&[]);
    }
    Some(unsafe { std::slice::from_raw_parts(data as *const u8, len) })
}

/// The elements of a Float64Array, writable, borrowed for the duration of the call (an out parameter the caller
/// reuses, so that a native answer of a few numbers allocates nothing).
pub fn get_f64s<'a>(env: napi_env, v: napi_value) -> Option<&'a mut [f64]> {
    let mut kind = 0i32;
    let mut len = 0usize;
    let mut data: *mut c_void = ptr::null_mut();
    let mut ab: napi_value = ptr::null_mut();
    let mut off = 0usize;
    if v.is_null()
        || unsafe { napi_get_typedarray_info(env, v, &mut kind, &mut len, &mut data, &mut ab, &mut off) } != NAPI_OK
    {
        return None;
    }
    // napi_float64_array = 8
    if kind != 8 || len == 0 || data.is_null() {
        return None;
    }
    Some(unsafe { std::slice::from_raw_parts_mut(data as *mut f64, len) })
}

pub fn number(env: napi_env, x: f64) -> napi_value {
    let mut v: napi_value = ptr::null_mut();
    unsafe { napi_create_double(env, x, &mut v) };
    v
}

pub fn null(env: napi_env) -> napi_value {
    let mut v: napi_value = ptr::null_mut();
    unsafe { napi_get_null(env, &mut v) };
    v
}

pub fn undefined(env: napi_env) -> napi_value {
    let mut v: napi_value = ptr::null_mut();
    unsafe { napi_get_undefined(env, &mut v) };
    v
}

pub fn buffer(env: napi_env, bytes: &[u8]) -> napi_value {
    let mut v: napi_value = ptr::null_mut();
    let mut out: *mut c_void = ptr::null_mut();
    unsafe { napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr() as *const c_void, &mut out, &mut v) };
    v
}

pub fn set_fn(env: napi_env, exports: napi_value, name: &'static [u8], f: napi_callback) {
    unsafe {
        let mut v: napi_value = ptr::null_mut();
        napi_create_function(env, name.as_ptr() as *const c_char, usize::MAX, f, ptr::null_mut(), &mut v);
        napi_set_named_property(env, exports, name.as_ptr() as *const c_char, v);
    }
}

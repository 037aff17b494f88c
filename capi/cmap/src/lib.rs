//! libcmap.so.4 over rotor: corosync's cmap C API (`corosync/cmap.h`, the ABI's definition)
//! as a thin layer over rotor-client's [`Cmap`], served by rotord. Handles are hdb-style
//! entries of [`HANDLES`] (rotor-capi's `Library`; stale or unknown: `CS_ERR_BAD_HANDLE`);
//! track callbacks run only from `cmap_dispatch`, with the handle unlocked.
//!
//! Values travel as corosync lays them out: numbers in the host's byte order at their fixed
//! width, strings with their terminating NUL counted in the length, binaries as they are.
//! `cmap_initialize_map(CMAP_MAP_STATS)` gives the stats map: the keys under `stats.`.
//! Iterations read the matching keys once, at `cmap_iter_init`. Where rotor differs: a string
//! value must be UTF-8 (else `CS_ERR_INVALID_PARAM`), and NULL output pointers are
//! `CS_ERR_INVALID_PARAM` rather than a crash.
//!
//! Safety contract of every exported function: pointer arguments are NULL or valid for what
//! `cmap.h` says the function does with them; key names are NUL-terminated.
#![allow(clippy::missing_safety_doc)]

mod abi {
    //! `corosync/cmap.h`'s types and constants, generated at build time.
    #![allow(
        non_camel_case_types,
        non_upper_case_globals,
        non_snake_case,
        dead_code
    )]
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/cmap.rs"));
}

// The entry point of the function libcmap.versions tags COROSYNC_CMAP_1.0.
include!(concat!(env!("OUT_DIR"), "/versioned.rs"));

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};

use abi::*;
use rotor_capi::abi::*;
use rotor_capi::library::Library;
use rotor_capi::{cs_error, guard, result, write_out, UserPointer};
use rotor_client::cmap::{Cmap, Map, Notification, Value, ValueType};
use rotor_client::cmap::{TRACK_ADD, TRACK_DELETE, TRACK_MODIFY, TRACK_PREFIX};

/// One track: the application's callback and its data.
#[derive(Clone, Copy)]
struct Track {
    notify: cmap_notify_fn_t,
    user_data: UserPointer,
}

/// One iteration: the keys (with sizes and types) read at `cmap_iter_init`.
struct Iteration {
    rows: Vec<(String, usize, cmap_value_types_t)>,
    next: usize,
}

/// What a handle keeps beside its connection.
struct State {
    context: UserPointer,
    /// By rotord's track handle, which is also the application's.
    tracks: HashMap<u64, Track>,
    iterations: HashMap<u64, Iteration>,
    iteration_next: u64,
}

/// Every live cmap handle.
static HANDLES: Library<Cmap, State> = Library::new();

/// A key name from C: NULL is `CS_ERR_INVALID_PARAM`, `CS_MAX_NAME_LENGTH` or longer is
/// `CS_ERR_NAME_TOO_LONG` (corosync's checks); rotord checks the rest.
unsafe fn key_name<'a>(key: *const c_char) -> Result<&'a str, cs_error_t> {
    if key.is_null() {
        return Err(CS_ERR_INVALID_PARAM);
    }
    // SAFETY: a NUL-terminated string, by the API's contract.
    let key = unsafe { CStr::from_ptr(key) };
    if key.to_bytes().len() >= CS_MAX_NAME_LENGTH as usize {
        return Err(CS_ERR_NAME_TOO_LONG);
    }
    key.to_str().map_err(|_| CS_ERR_INVALID_PARAM)
}

fn type_code(t: ValueType) -> cmap_value_types_t {
    match t {
        ValueType::I8 => CMAP_VALUETYPE_INT8,
        ValueType::U8 => CMAP_VALUETYPE_UINT8,
        ValueType::I16 => CMAP_VALUETYPE_INT16,
        ValueType::U16 => CMAP_VALUETYPE_UINT16,
        ValueType::I32 => CMAP_VALUETYPE_INT32,
        ValueType::U32 => CMAP_VALUETYPE_UINT32,
        ValueType::I64 => CMAP_VALUETYPE_INT64,
        ValueType::U64 => CMAP_VALUETYPE_UINT64,
        ValueType::Float => CMAP_VALUETYPE_FLOAT,
        ValueType::Double => CMAP_VALUETYPE_DOUBLE,
        ValueType::String => CMAP_VALUETYPE_STRING,
        ValueType::Binary => CMAP_VALUETYPE_BINARY,
    }
}

/// A value's bytes as corosync stores them (a string with its NUL).
fn value_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::I8(x) => x.to_ne_bytes().to_vec(),
        Value::U8(x) => x.to_ne_bytes().to_vec(),
        Value::I16(x) => x.to_ne_bytes().to_vec(),
        Value::U16(x) => x.to_ne_bytes().to_vec(),
        Value::I32(x) => x.to_ne_bytes().to_vec(),
        Value::U32(x) => x.to_ne_bytes().to_vec(),
        Value::I64(x) => x.to_ne_bytes().to_vec(),
        Value::U64(x) => x.to_ne_bytes().to_vec(),
        Value::Float(x) => x.to_ne_bytes().to_vec(),
        Value::Double(x) => x.to_ne_bytes().to_vec(),
        Value::String(s) => {
            let mut b = s.as_bytes().to_vec();
            b.push(0);
            b
        }
        Value::Binary(b) => b.clone(),
    }
}

/// A value from C bytes of type `t`: numbers must have their width; a string ends at its
/// first NUL (or the length) and must be UTF-8.
fn value_from(t: cmap_value_types_t, b: &[u8]) -> Result<Value, cs_error_t> {
    fn arr<const N: usize>(b: &[u8]) -> Result<[u8; N], cs_error_t> {
        b.try_into().map_err(|_| CS_ERR_INVALID_PARAM)
    }
    Ok(match t {
        CMAP_VALUETYPE_INT8 => Value::I8(i8::from_ne_bytes(arr(b)?)),
        CMAP_VALUETYPE_UINT8 => Value::U8(u8::from_ne_bytes(arr(b)?)),
        CMAP_VALUETYPE_INT16 => Value::I16(i16::from_ne_bytes(arr(b)?)),
        CMAP_VALUETYPE_UINT16 => Value::U16(u16::from_ne_bytes(arr(b)?)),
        CMAP_VALUETYPE_INT32 => Value::I32(i32::from_ne_bytes(arr(b)?)),
        CMAP_VALUETYPE_UINT32 => Value::U32(u32::from_ne_bytes(arr(b)?)),
        CMAP_VALUETYPE_INT64 => Value::I64(i64::from_ne_bytes(arr(b)?)),
        CMAP_VALUETYPE_UINT64 => Value::U64(u64::from_ne_bytes(arr(b)?)),
        CMAP_VALUETYPE_FLOAT => Value::Float(f32::from_ne_bytes(arr(b)?)),
        CMAP_VALUETYPE_DOUBLE => Value::Double(f64::from_ne_bytes(arr(b)?)),
        CMAP_VALUETYPE_STRING => {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            let s = std::str::from_utf8(&b[..end]).map_err(|_| CS_ERR_INVALID_PARAM)?;
            Value::String(s.to_owned())
        }
        CMAP_VALUETYPE_BINARY => Value::Binary(b.to_vec()),
        _ => return Err(CS_ERR_INVALID_PARAM),
    })
}

/// corosync's `CMAP_TRACK_*` bits as rotor's (they are numbered differently).
fn track_flags(track_type: i32) -> Result<u8, cs_error_t> {
    let known = (CMAP_TRACK_ADD | CMAP_TRACK_DELETE | CMAP_TRACK_MODIFY | CMAP_TRACK_PREFIX) as i32;
    if track_type & !known != 0 || track_type & !(CMAP_TRACK_PREFIX as i32) == 0 {
        return Err(CS_ERR_INVALID_PARAM);
    }
    let mut flags = 0;
    for (c, r) in [
        (CMAP_TRACK_ADD, TRACK_ADD),
        (CMAP_TRACK_DELETE, TRACK_DELETE),
        (CMAP_TRACK_MODIFY, TRACK_MODIFY),
        (CMAP_TRACK_PREFIX, TRACK_PREFIX),
    ] {
        if track_type & c as i32 != 0 {
            flags |= r;
        }
    }
    Ok(flags)
}

fn event_code(kind: u8) -> i32 {
    match kind {
        TRACK_ADD => CMAP_TRACK_ADD as i32,
        TRACK_DELETE => CMAP_TRACK_DELETE as i32,
        _ => CMAP_TRACK_MODIFY as i32,
    }
}

fn initialize(handle: *mut cmap_handle_t, map: cmap_map_t) -> cs_error_t {
    if handle.is_null() {
        return CS_ERR_INVALID_PARAM;
    }
    let map = match map {
        CMAP_MAP_DEFAULT => Map::Default,
        CMAP_MAP_STATS => Map::Stats,
        _ => return CS_ERR_INVALID_PARAM,
    };
    let cmap = match Cmap::initialize_map(map) {
        Ok(c) => c,
        Err(e) => return cs_error(&e),
    };
    let h = HANDLES.initialize(
        cmap,
        State {
            context: UserPointer::default(),
            tracks: HashMap::new(),
            iterations: HashMap::new(),
            iteration_next: 1,
        },
    );
    // SAFETY: checked not NULL; valid by the API's contract.
    unsafe { handle.write(h) };
    CS_OK
}

/// The function libcmap.versions tags `COROSYNC_CMAP_1.0`.
mod versioned {
    use super::*;

    /// `cmap_initialize`: a handle on the default map.
    pub unsafe extern "C" fn cmap_initialize(handle: *mut cmap_handle_t) -> cs_error_t {
        guard(|| initialize(handle, CMAP_MAP_DEFAULT))
    }
}

/// `cmap_initialize_map`: a handle on the default or the stats map.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_initialize_map(
    handle: *mut cmap_handle_t,
    map: cmap_map_t,
) -> cs_error_t {
    guard(|| initialize(handle, map))
}

/// `cmap_finalize`: closes the connection; its tracks end with it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_finalize(handle: cmap_handle_t) -> cs_error_t {
    HANDLES.finalize(handle, |state| {
        state.tracks.clear();
        state.iterations.clear();
    })
}

/// `cmap_fd_get`: a descriptor that polls readable while notifications wait.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_fd_get(handle: cmap_handle_t, fd: *mut c_int) -> cs_error_t {
    // SAFETY: the API's contract.
    unsafe { HANDLES.fd_get(handle, fd) }
}

/// `cmap_dispatch`: runs the track callbacks of waiting notifications (ONE, ALL, BLOCKING,
/// ONE_NONBLOCKING as in libcpg).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_dispatch(
    handle: cmap_handle_t,
    dispatch_types: cs_dispatch_flags_t,
) -> cs_error_t {
    HANDLES.dispatch(
        handle,
        dispatch_types,
        |s, n| s.tracks.get(&n.handle).copied(),
        |n, track| {
            // A track deleted meanwhile: its notification is dropped, as corosync does.
            if let Some(track) = track {
                notify(handle, n, track);
            }
            Ok(())
        },
    )
}

fn notify(handle: cmap_handle_t, n: &Notification, track: Track) {
    let Some(f) = track.notify else {
        return;
    };
    let Ok(key) = std::ffi::CString::new(n.key.as_str()) else {
        return;
    };
    let new = n.new.as_ref().map(value_bytes);
    let old = n.old.as_ref().map(value_bytes);
    let c_value = |v: &Option<Value>, b: &Option<Vec<u8>>| cmap_notify_value {
        type_: v.as_ref().map_or(0, |v| type_code(v.value_type())),
        len: b.as_ref().map_or(0, Vec::len),
        data: b.as_ref().map_or(std::ptr::null(), |b| b.as_ptr().cast()),
    };
    // SAFETY: the application's callback, given what cmap.h promises: a NUL-terminated key
    // and values whose bytes live until it returns.
    unsafe {
        f(
            handle,
            n.handle,
            event_code(n.kind),
            key.as_ptr(),
            c_value(&n.new, &new),
            c_value(&n.old, &old),
            track.user_data.0,
        )
    };
}

/// `cmap_context_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_context_get(
    handle: cmap_handle_t,
    context: *mut *const c_void,
) -> cs_error_t {
    HANDLES.with(handle, |_, s| {
        // SAFETY: the API's contract.
        unsafe { write_out(context, s.context.0.cast_const()) }
            .err()
            .unwrap_or(CS_OK)
    })
}

/// `cmap_context_set`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_context_set(
    handle: cmap_handle_t,
    context: *const c_void,
) -> cs_error_t {
    HANDLES.with(handle, |_, s| {
        s.context = UserPointer(context.cast_mut());
        CS_OK
    })
}

/// `cmap_set`: stores `value_len` bytes at `value` as a value of `type`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_set(
    handle: cmap_handle_t,
    key_name: *const c_char,
    value: *const c_void,
    value_len: usize,
    type_: cmap_value_types_t,
) -> cs_error_t {
    // SAFETY: the API's contract.
    let key = match unsafe { self::key_name(key_name) } {
        Ok(k) => k,
        Err(e) => return e,
    };
    if value.is_null() {
        return CS_ERR_INVALID_PARAM;
    }
    // SAFETY: `value_len` readable bytes at `value`, by the API's contract.
    let bytes = unsafe { std::slice::from_raw_parts(value.cast::<u8>(), value_len) };
    let v = match value_from(type_, bytes) {
        Ok(v) => v,
        Err(e) => return e,
    };
    HANDLES.with(handle, |cmap, _| result(cmap.set(key, v)))
}

macro_rules! setters {
    ($($name:ident($t:ty) => $code:ident;)*) => {$(
        #[doc = concat!("`", stringify!($name), "`: `cmap_set` of one `", stringify!($t), "`.")]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(handle: cmap_handle_t, key_name: *const c_char, value: $t) -> cs_error_t {
            let bytes = value.to_ne_bytes();
            // SAFETY: forwards the caller's contract; `bytes` lives through the call.
            unsafe { cmap_set(handle, key_name, bytes.as_ptr().cast(), bytes.len(), $code) }
        }
    )*};
}

setters! {
    cmap_set_int8(i8) => CMAP_VALUETYPE_INT8;
    cmap_set_uint8(u8) => CMAP_VALUETYPE_UINT8;
    cmap_set_int16(i16) => CMAP_VALUETYPE_INT16;
    cmap_set_uint16(u16) => CMAP_VALUETYPE_UINT16;
    cmap_set_int32(i32) => CMAP_VALUETYPE_INT32;
    cmap_set_uint32(u32) => CMAP_VALUETYPE_UINT32;
    cmap_set_int64(i64) => CMAP_VALUETYPE_INT64;
    cmap_set_uint64(u64) => CMAP_VALUETYPE_UINT64;
    cmap_set_float(f32) => CMAP_VALUETYPE_FLOAT;
    cmap_set_double(f64) => CMAP_VALUETYPE_DOUBLE;
}

/// `cmap_set_string`: a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_set_string(
    handle: cmap_handle_t,
    key_name: *const c_char,
    value: *const c_char,
) -> cs_error_t {
    if value.is_null() {
        return CS_ERR_INVALID_PARAM;
    }
    // SAFETY: a NUL-terminated string, by the API's contract.
    let len = unsafe { CStr::from_ptr(value) }.to_bytes().len();
    // SAFETY: forwards the caller's contract.
    unsafe { cmap_set(handle, key_name, value.cast(), len, CMAP_VALUETYPE_STRING) }
}

/// `cmap_delete`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_delete(handle: cmap_handle_t, key_name: *const c_char) -> cs_error_t {
    // SAFETY: the API's contract.
    let key = match unsafe { self::key_name(key_name) } {
        Ok(k) => k,
        Err(e) => return e,
    };
    HANDLES.with(handle, |cmap, _| result(cmap.delete(key)))
}

/// `cmap_get`: the value's type and size, and with `value` its bytes (`*value_len` is the
/// buffer's size on the way in; too small: `CS_ERR_INVALID_PARAM`, as corosync answers).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_get(
    handle: cmap_handle_t,
    key_name: *const c_char,
    value: *mut c_void,
    value_len: *mut usize,
    type_: *mut cmap_value_types_t,
) -> cs_error_t {
    // SAFETY: the API's contract.
    let key = match unsafe { self::key_name(key_name) } {
        Ok(k) => k,
        Err(e) => return e,
    };
    if !value.is_null() && value_len.is_null() {
        return CS_ERR_INVALID_PARAM;
    }
    HANDLES.with(handle, |cmap, _| {
        let v = match cmap.get(key) {
            Ok(v) => v,
            Err(e) => return cs_error(&e),
        };
        let bytes = value_bytes(&v);
        if !value.is_null() {
            // SAFETY: checked not NULL with `value`.
            let room = unsafe { *value_len };
            if room < bytes.len() {
                return CS_ERR_INVALID_PARAM;
            }
            // SAFETY: `room` ≥ `bytes.len()` writable bytes at `value`.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), value.cast(), bytes.len()) };
        }
        if !value_len.is_null() {
            // SAFETY: not NULL; valid by the API's contract.
            unsafe { value_len.write(bytes.len()) };
        }
        if !type_.is_null() {
            // SAFETY: not NULL; valid by the API's contract.
            unsafe { type_.write(type_code(v.value_type())) };
        }
        CS_OK
    })
}

/// `cmap_get` of a fixed-width value of type `want` into `out` (another type:
/// `CS_ERR_INVALID_PARAM`).
unsafe fn get_fixed<T>(
    handle: cmap_handle_t,
    key_name: *const c_char,
    out: *mut T,
    want: cmap_value_types_t,
) -> cs_error_t {
    if out.is_null() {
        return CS_ERR_INVALID_PARAM;
    }
    let mut buf = [0u8; 16];
    let mut len = buf.len();
    let mut t: cmap_value_types_t = 0;
    // SAFETY: forwards the caller's contract; the buffers are ours.
    let err = unsafe { cmap_get(handle, key_name, buf.as_mut_ptr().cast(), &mut len, &mut t) };
    if err != CS_OK {
        return err;
    }
    if t != want || len != std::mem::size_of::<T>() {
        return CS_ERR_INVALID_PARAM;
    }
    // SAFETY: `out` is valid for a T; `buf` holds `size_of::<T>()` bytes of one.
    unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), out.cast::<u8>(), len) };
    CS_OK
}

macro_rules! getters {
    ($($name:ident($t:ty) => $code:ident;)*) => {$(
        #[doc = concat!("`", stringify!($name), "`: `cmap_get` of one `", stringify!($t), "`.")]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(handle: cmap_handle_t, key_name: *const c_char, value: *mut $t) -> cs_error_t {
            guard(|| {
                // SAFETY: forwards the caller's contract.
                unsafe { get_fixed(handle, key_name, value, $code) }
            })
        }
    )*};
}

getters! {
    cmap_get_int8(i8) => CMAP_VALUETYPE_INT8;
    cmap_get_uint8(u8) => CMAP_VALUETYPE_UINT8;
    cmap_get_int16(i16) => CMAP_VALUETYPE_INT16;
    cmap_get_uint16(u16) => CMAP_VALUETYPE_UINT16;
    cmap_get_int32(i32) => CMAP_VALUETYPE_INT32;
    cmap_get_uint32(u32) => CMAP_VALUETYPE_UINT32;
    cmap_get_int64(i64) => CMAP_VALUETYPE_INT64;
    cmap_get_uint64(u64) => CMAP_VALUETYPE_UINT64;
    cmap_get_float(f32) => CMAP_VALUETYPE_FLOAT;
    cmap_get_double(f64) => CMAP_VALUETYPE_DOUBLE;
}

/// `cmap_get_string`: a copy the caller frees with `free()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_get_string(
    handle: cmap_handle_t,
    key_name: *const c_char,
    str_: *mut *mut c_char,
) -> cs_error_t {
    // SAFETY: the API's contract.
    let key = match unsafe { self::key_name(key_name) } {
        Ok(k) => k,
        Err(e) => return e,
    };
    if str_.is_null() {
        return CS_ERR_INVALID_PARAM;
    }
    HANDLES.with(handle, |cmap, _| {
        let s = match cmap.get(key) {
            Ok(Value::String(s)) => s,
            Ok(_) => return CS_ERR_INVALID_PARAM,
            Err(e) => return cs_error(&e),
        };
        // SAFETY: malloc for the caller to free; checked for NULL.
        let p = unsafe { libc::malloc(s.len() + 1) }.cast::<u8>();
        if p.is_null() {
            return CS_ERR_NO_MEMORY;
        }
        // SAFETY: `p` holds len + 1 bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
            p.add(s.len()).write(0);
            str_.write(p.cast());
        }
        CS_OK
    })
}

/// `cmap_inc`: adds one to an integer value, wrapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_inc(handle: cmap_handle_t, key_name: *const c_char) -> cs_error_t {
    // SAFETY: the API's contract.
    let key = match unsafe { self::key_name(key_name) } {
        Ok(k) => k,
        Err(e) => return e,
    };
    HANDLES.with(handle, |cmap, _| result(cmap.inc(key)))
}

/// `cmap_dec`: subtracts one from an integer value, wrapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_dec(handle: cmap_handle_t, key_name: *const c_char) -> cs_error_t {
    // SAFETY: the API's contract.
    let key = match unsafe { self::key_name(key_name) } {
        Ok(k) => k,
        Err(e) => return e,
    };
    HANDLES.with(handle, |cmap, _| result(cmap.dec(key)))
}

/// `cmap_iter_init`: iterates over the keys under `prefix` (NULL: every key of the map).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_iter_init(
    handle: cmap_handle_t,
    prefix: *const c_char,
    cmap_iter_handle: *mut cmap_iter_handle_t,
) -> cs_error_t {
    if cmap_iter_handle.is_null() {
        return CS_ERR_INVALID_PARAM;
    }
    let prefix = if prefix.is_null() {
        ""
    } else {
        // SAFETY: the API's contract.
        match unsafe { key_name(prefix) } {
            Ok(p) => p,
            Err(e) => return e,
        }
    };
    HANDLES.with(handle, |cmap, s| {
        let entries = match cmap.iter(prefix) {
            Ok(e) => e,
            Err(e) => return cs_error(&e),
        };
        let rows = entries
            .into_iter()
            .map(|(k, v)| (k, v.size_bytes(), type_code(v.value_type())))
            .collect();
        let id = s.iteration_next;
        s.iteration_next += 1;
        s.iterations.insert(id, Iteration { rows, next: 0 });
        // SAFETY: checked not NULL.
        unsafe { cmap_iter_handle.write(id) };
        CS_OK
    })
}

/// `cmap_iter_next`: the next key (into `key_name`, `CMAP_KEYNAME_MAXLEN + 1` bytes), its
/// value's size and type; `CS_ERR_NO_SECTIONS` after the last.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_iter_next(
    handle: cmap_handle_t,
    iter_handle: cmap_iter_handle_t,
    key_name: *mut c_char,
    value_len: *mut usize,
    type_: *mut cmap_value_types_t,
) -> cs_error_t {
    if key_name.is_null() {
        return CS_ERR_INVALID_PARAM;
    }
    HANDLES.with(handle, |_, s| {
        let Some(it) = s.iterations.get_mut(&iter_handle) else {
            return CS_ERR_BAD_HANDLE;
        };
        let Some((key, len, t)) = it.rows.get(it.next) else {
            return CS_ERR_NO_SECTIONS;
        };
        it.next += 1;
        let n = key.len().min(CMAP_KEYNAME_MAXLEN as usize);
        // SAFETY: the caller's buffer holds CMAP_KEYNAME_MAXLEN + 1 bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(key.as_ptr(), key_name.cast::<u8>(), n);
            key_name.add(n).write(0);
            if !value_len.is_null() {
                value_len.write(*len);
            }
            if !type_.is_null() {
                type_.write(*t);
            }
        }
        CS_OK
    })
}

/// `cmap_iter_finalize`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_iter_finalize(
    handle: cmap_handle_t,
    iter_handle: cmap_iter_handle_t,
) -> cs_error_t {
    HANDLES.with(handle, |_, s| match s.iterations.remove(&iter_handle) {
        Some(_) => CS_OK,
        None => CS_ERR_BAD_HANDLE,
    })
}

/// `cmap_track_add`: calls `notify_fn` from `cmap_dispatch` for the changes `track_type`
/// asks for (`CMAP_TRACK_ADD|DELETE|MODIFY`, with `CMAP_TRACK_PREFIX` every key under
/// `key_name`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_track_add(
    handle: cmap_handle_t,
    key_name: *const c_char,
    track_type: i32,
    notify_fn: cmap_notify_fn_t,
    user_data: *mut c_void,
    cmap_track_handle: *mut cmap_track_handle_t,
) -> cs_error_t {
    if cmap_track_handle.is_null() || notify_fn.is_none() {
        return CS_ERR_INVALID_PARAM;
    }
    let key = if key_name.is_null() {
        ""
    } else {
        // SAFETY: the API's contract.
        match unsafe { self::key_name(key_name) } {
            Ok(k) => k,
            Err(e) => return e,
        }
    };
    let flags = match track_flags(track_type) {
        Ok(f) => f,
        Err(e) => return e,
    };
    HANDLES.with(handle, |cmap, s| match cmap.track_add(key, flags) {
        Ok(h) => {
            s.tracks.insert(
                h,
                Track {
                    notify: notify_fn,
                    user_data: UserPointer(user_data),
                },
            );
            // SAFETY: checked not NULL.
            unsafe { cmap_track_handle.write(h) };
            CS_OK
        }
        Err(e) => cs_error(&e),
    })
}

/// `cmap_track_delete`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmap_track_delete(
    handle: cmap_handle_t,
    track_handle: cmap_track_handle_t,
) -> cs_error_t {
    HANDLES.with(handle, |cmap, s| {
        if s.tracks.remove(&track_handle).is_none() {
            return CS_ERR_BAD_HANDLE;
        }
        result(cmap.track_delete(track_handle))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_corosyncs_layout() {
        assert_eq!(value_bytes(&Value::String("ab".into())), b"ab\0");
        assert_eq!(
            value_from(CMAP_VALUETYPE_STRING, b"ab\0junk"),
            Ok(Value::String("ab".into()))
        );
        assert_eq!(
            value_from(CMAP_VALUETYPE_UINT32, &7u32.to_ne_bytes()),
            Ok(Value::U32(7))
        );
        assert_eq!(
            value_from(CMAP_VALUETYPE_UINT32, &[1, 2]),
            Err(CS_ERR_INVALID_PARAM)
        );
        assert_eq!(value_from(99, &[]), Err(CS_ERR_INVALID_PARAM));
        assert_eq!(
            value_from(CMAP_VALUETYPE_STRING, &[0xff]),
            Err(CS_ERR_INVALID_PARAM)
        );
    }

    #[test]
    fn track_bits_are_translated() {
        let all =
            (CMAP_TRACK_ADD | CMAP_TRACK_DELETE | CMAP_TRACK_MODIFY | CMAP_TRACK_PREFIX) as i32;
        assert_eq!(
            track_flags(all),
            Ok(TRACK_ADD | TRACK_DELETE | TRACK_MODIFY | TRACK_PREFIX)
        );
        assert_eq!(track_flags(CMAP_TRACK_ADD as i32), Ok(TRACK_ADD));
        assert_eq!(track_flags(0), Err(CS_ERR_INVALID_PARAM));
        assert_eq!(
            track_flags(CMAP_TRACK_PREFIX as i32),
            Err(CS_ERR_INVALID_PARAM)
        );
        assert_eq!(track_flags(0x100), Err(CS_ERR_INVALID_PARAM));
        assert_eq!(event_code(TRACK_DELETE), CMAP_TRACK_DELETE as i32);
    }
}

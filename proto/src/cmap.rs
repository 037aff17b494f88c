//! cmap records between an application and rotord, and the typed values they carry (the
//! values' types and cmapctl names are corosync's, `tools/corosync-cmapctl.c`).

use std::fmt;
use std::fmt::Write as _;

use crate::codec::{DecodeError, Reader, Writer};
use crate::Status;

pub const OP_GET: u16 = 0x0201;
pub const OP_SET: u16 = 0x0202;
pub const OP_DELETE: u16 = 0x0203;
pub const OP_ITER: u16 = 0x0204;
pub const OP_TRACK_ADD: u16 = 0x0205;
pub const OP_TRACK_DELETE: u16 = 0x0206;
pub const OP_INC: u16 = 0x0207;
pub const OP_DEC: u16 = 0x0208;
pub const OP_REPLY: u16 = 0x0281;
pub const OP_NOTIFY: u16 = 0x0282;

/// The type of a cmap value, with corosync-cmapctl's names (`tools/corosync-cmapctl.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Float,
    Double,
    String,
    Binary,
}

impl ValueType {
    /// The name corosync-cmapctl prints between parentheses and accepts for `-s`.
    pub fn cmapctl_name(self) -> &'static str {
        match self {
            ValueType::I8 => "i8",
            ValueType::U8 => "u8",
            ValueType::I16 => "i16",
            ValueType::U16 => "u16",
            ValueType::I32 => "i32",
            ValueType::U32 => "u32",
            ValueType::I64 => "i64",
            ValueType::U64 => "u64",
            ValueType::Float => "flt",
            ValueType::Double => "dbl",
            ValueType::String => "str",
            ValueType::Binary => "bin",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cmapctl_name())
    }
}

/// One typed cmap value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Float(f32),
    Double(f64),
    /// Invariant (inside a `Cmap`): contains no NUL byte.
    String(String),
    Binary(Vec<u8>),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::I8(_) => ValueType::I8,
            Value::U8(_) => ValueType::U8,
            Value::I16(_) => ValueType::I16,
            Value::U16(_) => ValueType::U16,
            Value::I32(_) => ValueType::I32,
            Value::U32(_) => ValueType::U32,
            Value::I64(_) => ValueType::I64,
            Value::U64(_) => ValueType::U64,
            Value::Float(_) => ValueType::Float,
            Value::Double(_) => ValueType::Double,
            Value::String(_) => ValueType::String,
            Value::Binary(_) => ValueType::Binary,
        }
    }

    /// Size as corosync stores it: fixed width for numbers, length + NUL for a string.
    pub fn size_bytes(&self) -> usize {
        match self {
            Value::I8(_) | Value::U8(_) => 1,
            Value::I16(_) | Value::U16(_) => 2,
            Value::I32(_) | Value::U32(_) | Value::Float(_) => 4,
            Value::I64(_) | Value::U64(_) | Value::Double(_) => 8,
            Value::String(s) => s.len() + 1,
            Value::Binary(b) => b.len(),
        }
    }

    /// Equality that treats two NaNs of the same bits as equal, so re-setting a NaN is no
    /// change (corosync compares the stored bytes, `icmap_item_eq`).
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
            _ => self == other,
        }
    }
}

impl ValueType {
    fn code(self) -> u8 {
        self as u8 + 1
    }
    fn from_code(c: u8) -> Result<ValueType, DecodeError> {
        const ALL: [ValueType; 12] = [
            ValueType::I8,
            ValueType::U8,
            ValueType::I16,
            ValueType::U16,
            ValueType::I32,
            ValueType::U32,
            ValueType::I64,
            ValueType::U64,
            ValueType::Float,
            ValueType::Double,
            ValueType::String,
            ValueType::Binary,
        ];
        ALL.get(usize::from(c).wrapping_sub(1))
            .copied()
            .ok_or(DecodeError::BadValue("value type"))
    }

    /// Parses a cmapctl type name (`u32`, `str`, …).
    pub fn from_cmapctl_name(name: &str) -> Option<ValueType> {
        (1..=12)
            .filter_map(|c| ValueType::from_code(c).ok())
            .find(|t| t.cmapctl_name() == name)
    }
}

impl Value {
    /// Parses `text` as a value of type `t`, as `corosync-cmapctl -s KEY TYPE VALUE` does.
    pub fn parse(t: ValueType, text: &str) -> Result<Value, String> {
        fn num<T: std::str::FromStr>(text: &str, t: ValueType) -> Result<T, String> {
            text.trim()
                .parse()
                .map_err(|_| format!("{text:?} is not a valid {t} value"))
        }
        Ok(match t {
            ValueType::I8 => Value::I8(num(text, t)?),
            ValueType::U8 => Value::U8(num(text, t)?),
            ValueType::I16 => Value::I16(num(text, t)?),
            ValueType::U16 => Value::U16(num(text, t)?),
            ValueType::I32 => Value::I32(num(text, t)?),
            ValueType::U32 => Value::U32(num(text, t)?),
            ValueType::I64 => Value::I64(num(text, t)?),
            ValueType::U64 => Value::U64(num(text, t)?),
            ValueType::Float => Value::Float(num(text, t)?),
            ValueType::Double => Value::Double(num(text, t)?),
            ValueType::String => Value::String(text.to_owned()),
            ValueType::Binary => Value::Binary(text.as_bytes().to_vec()),
        })
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u8(self.value_type().code());
        match self {
            Value::I8(v) => w.bytes(&v.to_le_bytes()),
            Value::U8(v) => w.bytes(&v.to_le_bytes()),
            Value::I16(v) => w.bytes(&v.to_le_bytes()),
            Value::U16(v) => w.bytes(&v.to_le_bytes()),
            Value::I32(v) => w.bytes(&v.to_le_bytes()),
            Value::U32(v) => w.bytes(&v.to_le_bytes()),
            Value::I64(v) => w.bytes(&v.to_le_bytes()),
            Value::U64(v) => w.bytes(&v.to_le_bytes()),
            Value::Float(v) => w.bytes(&v.to_le_bytes()),
            Value::Double(v) => w.bytes(&v.to_le_bytes()),
            Value::String(s) => w.bytes(s.as_bytes()),
            Value::Binary(b) => w.bytes(b),
        };
    }

    fn read(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
        let t = ValueType::from_code(r.u8("value type")?)?;
        let b = r.bytes("value")?;
        fn arr<const N: usize>(b: &[u8]) -> Result<[u8; N], DecodeError> {
            b.try_into()
                .map_err(|_| DecodeError::BadValue("value width"))
        }
        Ok(match t {
            ValueType::I8 => Value::I8(i8::from_le_bytes(arr(b)?)),
            ValueType::U8 => Value::U8(u8::from_le_bytes(arr(b)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(arr(b)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(arr(b)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(arr(b)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(arr(b)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(arr(b)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(arr(b)?)),
            ValueType::Float => Value::Float(f32::from_le_bytes(arr(b)?)),
            ValueType::Double => Value::Double(f64::from_le_bytes(arr(b)?)),
            ValueType::String => Value::String(
                std::str::from_utf8(b)
                    .map_err(|_| DecodeError::BadValue("string value"))?
                    .to_owned(),
            ),
            ValueType::Binary => Value::Binary(b.to_vec()),
        })
    }
}

/// What a track reports (corosync's `CMAP_TRACK_ADD|DELETE|MODIFY|PREFIX` bits).
pub const TRACK_ADD: u8 = 1;
pub const TRACK_DELETE: u8 = 2;
pub const TRACK_MODIFY: u8 = 4;
pub const TRACK_PREFIX: u8 = 8;

/// Where SAM (the simple availability manager, `rotor_client::sam`) publishes each supervised
/// process, as corosync's `lib/sam.c` does: `resources.process.<pid>.<name>`, the supervisor's
/// pid in decimal. These keys belong to the clients that write them: `resources.` is a
/// config section, but rotord lets clients write and delete the keys of a process
/// ([`is_process_resource_key`]), as corosync does.
pub const PROCESS_RESOURCES_PREFIX: &str = "resources.process.";

/// Whether `key` is one supervised process's key: `resources.process.<pid>.<name>` with the
/// pid in decimal digits and a non-empty name. Config keys such as
/// `resources.process.memory_used.recovery` are not.
pub fn is_process_resource_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(PROCESS_RESOURCES_PREFIX) else {
        return false;
    };
    let Some((pid, name)) = rest.split_once('.') else {
        return false;
    };
    !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty()
}

/// A request from an application.
#[derive(Clone, Debug, PartialEq)]
pub enum Request<'a> {
    Get {
        key: &'a str,
    },
    Set {
        key: &'a str,
        value: Value,
    },
    Delete {
        key: &'a str,
    },
    /// Every key starting with `prefix` (all keys for `""`), sorted.
    Iter {
        prefix: &'a str,
    },
    TrackAdd {
        key: &'a str,
        flags: u8,
    },
    TrackDelete {
        handle: u64,
    },
    /// Adds one to an integer value, wrapping (corosync's `cmap_inc`).
    Inc {
        key: &'a str,
    },
    /// Subtracts one from an integer value, wrapping (`cmap_dec`).
    Dec {
        key: &'a str,
    },
}

impl Request<'_> {
    pub fn encode(&self, req_id: u32, out: &mut Vec<u8>) {
        match self {
            Request::Get { key } => {
                Writer::new(out, OP_GET, req_id).str(key);
            }
            Request::Set { key, value } => {
                let mut w = Writer::new(out, OP_SET, req_id);
                w.str(key);
                value.write(&mut w);
            }
            Request::Delete { key } => {
                Writer::new(out, OP_DELETE, req_id).str(key);
            }
            Request::Iter { prefix } => {
                Writer::new(out, OP_ITER, req_id).str(prefix);
            }
            Request::TrackAdd { key, flags } => {
                Writer::new(out, OP_TRACK_ADD, req_id).str(key).u8(*flags);
            }
            Request::TrackDelete { handle } => {
                Writer::new(out, OP_TRACK_DELETE, req_id).u64(*handle);
            }
            Request::Inc { key } => {
                Writer::new(out, OP_INC, req_id).str(key);
            }
            Request::Dec { key } => {
                Writer::new(out, OP_DEC, req_id).str(key);
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<(u32, Request<'_>), DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let req = match env.op {
            OP_GET => Request::Get { key: r.str("key")? },
            OP_SET => Request::Set {
                key: r.str("key")?,
                value: Value::read(&mut r)?,
            },
            OP_DELETE => Request::Delete { key: r.str("key")? },
            OP_ITER => Request::Iter {
                prefix: r.str("prefix")?,
            },
            OP_TRACK_ADD => Request::TrackAdd {
                key: r.str("key")?,
                flags: r.u8("flags")?,
            },
            OP_TRACK_DELETE => Request::TrackDelete {
                handle: r.u64("handle")?,
            },
            OP_INC => Request::Inc { key: r.str("key")? },
            OP_DEC => Request::Dec { key: r.str("key")? },
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok((env.req_id, req))
    }
}

/// What rotord answers or reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Reply {
        req_id: u32,
        status: Status,
        /// Why, in words, when `status` is not OK.
        message: String,
        /// `Get`: the value; `TrackAdd`: the handle as a `U64`.
        value: Option<Value>,
        /// `Iter`: the keys and values.
        entries: Vec<(String, Value)>,
    },
    /// A tracked key changed; `kind` is one of `TRACK_ADD`, `TRACK_DELETE`, `TRACK_MODIFY`.
    Notify {
        handle: u64,
        kind: u8,
        key: String,
        old: Option<Value>,
        new: Option<Value>,
    },
}

fn write_opt(w: &mut Writer<'_>, v: &Option<Value>) {
    match v {
        Some(v) => {
            w.u8(1);
            v.write(w);
        }
        None => {
            w.u8(0);
        }
    }
}

fn read_opt(r: &mut Reader<'_>) -> Result<Option<Value>, DecodeError> {
    match r.u8("option")? {
        0 => Ok(None),
        1 => Ok(Some(Value::read(r)?)),
        _ => Err(DecodeError::BadValue("option")),
    }
}

impl Event {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Event::Reply {
                req_id,
                status,
                message,
                value,
                entries,
            } => {
                let mut w = Writer::new(out, OP_REPLY, *req_id);
                w.u32(status.code()).str(message);
                write_opt(&mut w, value);
                w.u32(entries.len() as u32);
                for (k, v) in entries {
                    w.str(k);
                    v.write(&mut w);
                }
            }
            Event::Notify {
                handle,
                kind,
                key,
                old,
                new,
            } => {
                let mut w = Writer::new(out, OP_NOTIFY, 0);
                w.u64(*handle).u8(*kind).str(key);
                write_opt(&mut w, old);
                write_opt(&mut w, new);
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Event, DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let ev = match env.op {
            OP_REPLY => {
                let status =
                    Status::from_code(r.u32("status")?).ok_or(DecodeError::BadValue("status"))?;
                let message = r.str("message")?.to_owned();
                let value = read_opt(&mut r)?;
                let n = r.count(9, "entries")?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = r.str("key")?.to_owned();
                    entries.push((k, Value::read(&mut r)?));
                }
                Event::Reply {
                    req_id: env.req_id,
                    status,
                    message,
                    value,
                    entries,
                }
            }
            OP_NOTIFY => Event::Notify {
                handle: r.u64("handle")?,
                kind: r.u8("kind")?,
                key: r.str("key")?.to_owned(),
                old: read_opt(&mut r)?,
                new: read_opt(&mut r)?,
            },
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok(ev)
    }
}

/// One line as corosync-cmapctl prints it, without the newline: `key (type) = value`.
///
/// Follows `print_key` in `tools/corosync-cmapctl.c`: floats and doubles with `%f` (six
/// decimals), a binary value only with `-b` (`show_binary`), printable ASCII as is, `\` as
/// `\\`, other bytes as `\xNN` — and, as there (`char` is signed on x86), bytes from 0x80 as
/// `\xFFFFFFNN`, because monitoring that parses this output sees exactly that.
pub fn format_cmapctl_line(key: &str, value: &Value, show_binary: bool) -> String {
    let mut line = format!("{key} ({})", value.value_type());
    let text = match value {
        Value::I8(v) => v.to_string(),
        Value::U8(v) => v.to_string(),
        Value::I16(v) => v.to_string(),
        Value::U16(v) => v.to_string(),
        Value::I32(v) => v.to_string(),
        Value::U32(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::Float(v) => format_c_f(f64::from(*v)),
        Value::Double(v) => format_c_f(*v),
        Value::String(v) => v.clone(),
        Value::Binary(bytes) => {
            if !show_binary {
                return line;
            }
            if bytes.is_empty() {
                // corosync prints `*empty*` when it has no buffer; an empty value has none.
                "*empty*".to_string()
            } else {
                let mut text = String::with_capacity(bytes.len());
                for &b in bytes {
                    match b {
                        b'\\' => text.push_str("\\\\"),
                        b' '..=0x7e => text.push(char::from(b)),
                        0x80..=0xff => {
                            let _ = write!(text, "\\x{:02X}", (b as i8) as i32 as u32);
                        }
                        _ => {
                            let _ = write!(text, "\\x{b:02X}");
                        }
                    }
                }
                text
            }
        }
    };
    line.push_str(" = ");
    line.push_str(&text);
    line
}

/// C's `printf("%f")`: six decimals, `inf`/`-inf`, `nan`/`-nan` as glibc spells them.
fn format_c_f(v: f64) -> String {
    if v.is_nan() {
        if v.is_sign_negative() {
            "-nan".to_string()
        } else {
            "nan".to_string()
        }
    } else if v.is_infinite() {
        if v < 0.0 {
            "-inf".to_string()
        } else {
            "inf".to_string()
        }
    } else {
        format!("{v:.6}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_resource_keys_are_those_of_a_pid() {
        for key in [
            "resources.process.4120.state",
            "resources.process.1.last_updated",
        ] {
            assert!(is_process_resource_key(key), "{key}");
        }
        for key in [
            "resources.process.memory_used.recovery",
            "resources.process.4120",
            "resources.process.4120.",
            "resources.process..state",
            "resources.system.4120.state",
            "resources.watchdog_timeout",
        ] {
            assert!(!is_process_resource_key(key), "{key}");
        }
    }

    #[test]
    fn values_and_records_round_trip() {
        let values = [
            Value::I8(-1),
            Value::U8(2),
            Value::I16(-3),
            Value::U16(4),
            Value::I32(-5),
            Value::U32(6),
            Value::I64(-7),
            Value::U64(8),
            Value::Float(1.5),
            Value::Double(-2.25),
            Value::String("abc".into()),
            Value::Binary(vec![0, 1, 2]),
        ];
        let mut buf = Vec::new();
        for v in values {
            let req = Request::Set {
                key: "totem.token",
                value: v.clone(),
            };
            req.encode(3, &mut buf);
            assert_eq!(Request::decode(&buf).unwrap(), (3, req));
            let ev = Event::Reply {
                req_id: 3,
                status: Status::Ok,
                message: String::new(),
                value: Some(v.clone()),
                entries: vec![("a.b".into(), v.clone())],
            };
            ev.encode(&mut buf);
            assert_eq!(Event::decode(&buf).unwrap(), ev);
            for cut in 0..buf.len() {
                assert!(Event::decode(&buf[..cut]).is_err());
            }
            assert_eq!(
                ValueType::from_cmapctl_name(v.value_type().cmapctl_name()),
                Some(v.value_type())
            );
        }
        for req in [
            Request::Inc { key: "a.b.c" },
            Request::Dec { key: "a.b.c" },
            Request::TrackDelete { handle: 7 },
        ] {
            req.encode(4, &mut buf);
            assert_eq!(Request::decode(&buf).unwrap(), (4, req));
        }
        let ev = Event::Notify {
            handle: 9,
            kind: TRACK_MODIFY,
            key: "x.y.z".into(),
            old: Some(Value::U32(1)),
            new: None,
        };
        ev.encode(&mut buf);
        assert_eq!(Event::decode(&buf).unwrap(), ev);
    }

    #[test]
    fn parse_follows_the_type() {
        assert_eq!(Value::parse(ValueType::U32, "5000"), Ok(Value::U32(5000)));
        assert!(Value::parse(ValueType::U8, "300").is_err());
        assert_eq!(
            Value::parse(ValueType::String, "x y"),
            Ok(Value::String("x y".into()))
        );
    }
}

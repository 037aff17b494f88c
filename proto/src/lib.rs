//! rotor-proto: the records local parties exchange over ipc-shm rings and over the control
//! socket between rotord and the dataplane — CPG requests and events (application ↔
//! dataplane), cmap and cfg requests (application ↔ rotord), and the supervision messages
//! (rotord ↔ dataplane), runtime changes between rotord and the dataplane (`change`). These layouts are an ABI: every record starts with the same 8-byte
//! envelope (`op u16, flags u16, request id u32`, little-endian, the byte order of the one host
//! both ends run on), fields follow at fixed widths, variable parts carry a `u32` length.
//! Decoders check every length before reading and return an error for anything impossible;
//! they never panic and never allocate more than the record holds. This crate deliberately does
//! no I/O and keeps no state: it only encodes and decodes.

/// The methods of a setting's enum whose values each have a config spelling and a record
/// byte, both written once beside the variant: `ALL` and `NAMES` (in the order of the bytes),
/// `name`, `from_name`, and the module's own `code` and `from_code` for its encoders.
macro_rules! spelled_codes {
    ($ty:ident { $($variant:ident = $code:literal, $name:literal;)+ }) => {
        impl $ty {
            /// Every value, in the order of [`Self::NAMES`] and of their record bytes.
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];
            /// The config spellings, in the order of [`Self::ALL`].
            pub const NAMES: [&'static str; [$($name),+].len()] = [$($name),+];

            /// The config spelling.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }

            /// The value a config spelling names.
            pub fn from_name(name: &str) -> Option<$ty> {
                match name {
                    $($name => Some($ty::$variant),)+
                    _ => None,
                }
            }

            fn code(self) -> u8 {
                match self {
                    $($ty::$variant => $code,)+
                }
            }

            fn from_code(code: u8) -> Option<$ty> {
                match code {
                    $($code => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

pub mod cfg;
pub mod change;
pub mod cmap;
pub mod codec;
pub mod control;
pub mod cpg;
pub mod dataplane_quorum;
pub mod link;
pub mod log;
pub mod quorum;
pub mod stats;
pub mod votequorum;
pub mod xdp;

pub use codec::{DecodeError, Reader, Writer};

/// The abstract socket (suffix of `ipc_shm::socket_name()`) where rotord hands out CPG
/// sessions, which it then connects straight to the dataplane.
pub const CPG_SOCKET_SUFFIX: &str = "-cpg";

/// The CPG socket name for a base ipc-shm socket name.
pub fn cpg_socket_name(base: &str) -> String {
    format!("{base}{CPG_SOCKET_SUFFIX}")
}

/// A node's ring as rotord and `rotor status` report it: the Totem protocol state, or `Down`
/// while no dataplane runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingState {
    Down,
    Gather,
    Commit,
    Recovery,
    Operational,
}

impl RingState {
    const ALL: [RingState; 5] = [
        RingState::Down,
        RingState::Gather,
        RingState::Commit,
        RingState::Recovery,
        RingState::Operational,
    ];

    /// The lower-case name `rotor status` prints and cmap's `runtime.totem.pg.mrp.srp.state`
    /// holds.
    pub fn name(self) -> &'static str {
        match self {
            RingState::Down => "down",
            RingState::Gather => "gather",
            RingState::Commit => "commit",
            RingState::Recovery => "recovery",
            RingState::Operational => "operational",
        }
    }

    /// The record byte.
    pub fn code(self) -> u8 {
        match self {
            RingState::Down => 0,
            RingState::Gather => 1,
            RingState::Commit => 2,
            RingState::Recovery => 3,
            RingState::Operational => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<RingState> {
        RingState::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn from_name(name: &str) -> Option<RingState> {
        RingState::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for RingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of a request, with corosync's `cs_error_t` numbers so that the later C
/// libraries can pass them through unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Ok,
    /// `CS_ERR_LIBRARY`: the peer broke the protocol.
    Library,
    /// `CS_ERR_TIMEOUT`: no answer in time.
    Timeout,
    /// `CS_ERR_TRY_AGAIN`: a queue is full; nothing was done.
    TryAgain,
    /// `CS_ERR_INVALID_PARAM`
    InvalidParam,
    /// `CS_ERR_ACCESS`
    Access,
    /// `CS_ERR_NOT_EXIST`
    NotExist,
    /// `CS_ERR_EXIST`
    Exist,
    /// `CS_ERR_TOO_BIG`
    TooBig,
    /// `CS_ERR_BAD_HANDLE`: e.g. leaving a group not joined.
    BadHandle,
    /// `CS_ERR_BUSY`: e.g. an application vetoed a shutdown.
    Busy,
    /// `CS_ERR_NO_SPACE`
    NoSpace,
    /// `CS_ERR_NAME_NOT_FOUND`: e.g. votes for a node votequorum does not know.
    NameNotFound,
    /// `CS_ERR_NO_RESOURCES`
    NoResources,
    /// `CS_ERR_MESSAGE_ERROR`: e.g. a quorum device poll for another ring.
    MessageError,
}

impl Status {
    pub fn code(self) -> u32 {
        match self {
            Status::Ok => 1,
            Status::Library => 2,
            Status::Timeout => 5,
            Status::TryAgain => 6,
            Status::InvalidParam => 7,
            Status::BadHandle => 9,
            Status::Busy => 10,
            Status::Access => 11,
            Status::NotExist => 12,
            Status::Exist => 14,
            Status::NoSpace => 15,
            Status::NameNotFound => 17,
            Status::NoResources => 18,
            Status::MessageError => 22,
            Status::TooBig => 26,
        }
    }

    pub fn from_code(code: u32) -> Option<Status> {
        Some(match code {
            1 => Status::Ok,
            2 => Status::Library,
            5 => Status::Timeout,
            6 => Status::TryAgain,
            7 => Status::InvalidParam,
            9 => Status::BadHandle,
            10 => Status::Busy,
            11 => Status::Access,
            12 => Status::NotExist,
            14 => Status::Exist,
            15 => Status::NoSpace,
            17 => Status::NameNotFound,
            18 => Status::NoResources,
            22 => Status::MessageError,
            26 => Status::TooBig,
            _ => return None,
        })
    }

    /// corosync's name for the code, for messages people compare with corosync's tools.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "CS_OK",
            Status::Library => "CS_ERR_LIBRARY",
            Status::Timeout => "CS_ERR_TIMEOUT",
            Status::Busy => "CS_ERR_BUSY",
            Status::TryAgain => "CS_ERR_TRY_AGAIN",
            Status::InvalidParam => "CS_ERR_INVALID_PARAM",
            Status::BadHandle => "CS_ERR_BAD_HANDLE",
            Status::Access => "CS_ERR_ACCESS",
            Status::NotExist => "CS_ERR_NOT_EXIST",
            Status::Exist => "CS_ERR_EXIST",
            Status::NoSpace => "CS_ERR_NO_SPACE",
            Status::NameNotFound => "CS_ERR_NAME_NOT_FOUND",
            Status::NoResources => "CS_ERR_NO_RESOURCES",
            Status::MessageError => "CS_ERR_MESSAGE_ERROR",
            Status::TooBig => "CS_ERR_TOO_BIG",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_round_trip() {
        for s in [
            Status::Ok,
            Status::Library,
            Status::Timeout,
            Status::TryAgain,
            Status::InvalidParam,
            Status::BadHandle,
            Status::Busy,
            Status::Access,
            Status::NotExist,
            Status::Exist,
            Status::NoSpace,
            Status::NameNotFound,
            Status::NoResources,
            Status::MessageError,
            Status::TooBig,
        ] {
            assert_eq!(Status::from_code(s.code()), Some(s));
        }
        assert_eq!(Status::from_code(0), None);
    }
}

//! Attaching the steering program to an interface: mode choice, stale-program recovery, detach.
//!
//! Every call here speaks netlink from the calling thread, so it acts on the network namespace
//! that thread is in: load, detach and drop an [`XdpProgram`] from threads in the interface's
//! namespace.

use std::ffi::{CStr, CString};
use std::fmt;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::{Xdp, XdpFlags};
use tracing::{debug, error, warn};

use crate::{SteerProgram, XdpCounters, XdpError, PROGRAM_NAME};

/// Which XDP mode to attach in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Native (driver) mode if the driver supports it, else generic.
    #[default]
    Auto,
    /// Native (driver) mode only: fails on drivers without XDP support.
    Native,
    /// Generic (skb) mode: works on every interface, after the kernel has built an skb.
    Generic,
}

/// The mode the program was actually attached in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Generic,
}

impl AttachedMode {
    fn flag(self) -> XdpFlags {
        match self {
            AttachedMode::Native => XdpFlags::DRV_MODE,
            AttachedMode::Generic => XdpFlags::SKB_MODE,
        }
    }
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        })
    }
}

/// A network interface of the calling thread's network namespace, by name or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interface {
    Name(String),
    Index(u32),
}

impl From<&str> for Interface {
    fn from(name: &str) -> Interface {
        Interface::Name(name.to_owned())
    }
}

impl From<String> for Interface {
    fn from(name: String) -> Interface {
        Interface::Name(name)
    }
}

impl From<u32> for Interface {
    fn from(ifindex: u32) -> Interface {
        Interface::Index(ifindex)
    }
}

impl Interface {
    /// The interface's index and name, checked to exist.
    pub(crate) fn resolve(&self) -> Result<(u32, String), XdpError> {
        match self {
            Interface::Name(name) => {
                let c_name = CString::new(name.as_str())
                    .map_err(|_| XdpError::NoSuchInterface(name.clone()))?;
                // Safety: c_name is a valid NUL-terminated string that outlives the call.
                let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
                if ifindex == 0 {
                    return Err(XdpError::NoSuchInterface(name.clone()));
                }
                Ok((ifindex, name.clone()))
            }
            &Interface::Index(ifindex) => {
                let mut buffer = [0 as libc::c_char; libc::IF_NAMESIZE];
                // Safety: the buffer has IF_NAMESIZE bytes, as if_indextoname requires; on
                // success it holds a NUL-terminated name.
                let name = unsafe { libc::if_indextoname(ifindex, buffer.as_mut_ptr()) };
                if name.is_null() {
                    return Err(XdpError::NoSuchIfindex(ifindex));
                }
                // Safety: if_indextoname succeeded, so `buffer` holds a NUL-terminated string.
                let name = unsafe { CStr::from_ptr(buffer.as_ptr()) };
                Ok((ifindex, name.to_string_lossy().into_owned()))
            }
        }
    }
}

/// Options of [`XdpProgram::load_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Replace an XDP program of another name already attached to the interface. Off by
    /// default: that program belongs to someone else. A stale copy of rotor's own program
    /// (named [`PROGRAM_NAME`]) is replaced regardless.
    pub replace_foreign: bool,
}

/// The steering program attached to one interface. Dropping it detaches it (only if it is
/// still the program attached: a newer one is left alone).
#[derive(Debug)]
pub struct XdpProgram {
    steer: SteerProgram,
    ifindex: u32,
    interface: String,
    mode: AttachedMode,
    replaced_prog_id: Option<u32>,
    /// Invariant: true until `detach` ran, so Drop detaches at most once.
    attached: bool,
}

impl XdpProgram {
    /// Loads the program with `ports` as the cluster ports and attaches it to `interface`
    /// in `mode`, replacing a stale copy of itself; see [`XdpProgram::load_with`].
    pub fn load(
        interface: impl Into<Interface>,
        ports: &[u16],
        mode: AttachMode,
    ) -> Result<XdpProgram, XdpError> {
        XdpProgram::load_with(interface, ports, mode, LoadOptions::default())
    }

    /// [`XdpProgram::load`] with options (replacing a foreign program).
    pub fn load_with(
        interface: impl Into<Interface>,
        ports: &[u16],
        mode: AttachMode,
        options: LoadOptions,
    ) -> Result<XdpProgram, XdpError> {
        SteerProgram::load(ports)?.attach(interface, mode, options)
    }

    /// The mode the program runs in.
    pub fn mode(&self) -> AttachedMode {
        self.mode
    }

    /// The index of the interface it is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The name of the interface it is attached to (as it was at attach time).
    pub fn interface_name(&self) -> &str {
        &self.interface
    }

    /// The id of the program this one replaced at attach time, if there was one.
    pub fn replaced_prog_id(&self) -> Option<u32> {
        self.replaced_prog_id
    }

    /// The loaded program and its maps.
    pub fn program(&self) -> &SteerProgram {
        &self.steer
    }

    /// See [`SteerProgram::set_ports`].
    pub fn set_ports(&self, ports: &[u16]) -> Result<(), XdpError> {
        self.steer.set_ports(ports)
    }

    /// See [`SteerProgram::set_sources`].
    pub fn set_sources(
        &self,
        sources: &[crate::Source],
        unknown: crate::UnknownSource,
    ) -> Result<(), XdpError> {
        self.steer.set_sources(sources, unknown)
    }

    /// See [`SteerProgram::insert_xsk`].
    pub fn insert_xsk(&self, queue_index: u32, xsk: BorrowedFd<'_>) -> Result<(), XdpError> {
        self.steer.insert_xsk(queue_index, xsk)
    }

    /// See [`SteerProgram::remove_xsk`].
    pub fn remove_xsk(&self, queue_index: u32) -> Result<(), XdpError> {
        self.steer.remove_xsk(queue_index)
    }

    /// See [`SteerProgram::maps`].
    pub fn maps(&self) -> &crate::SteerMaps {
        self.steer.maps()
    }

    /// See [`SteerProgram::xsks_map_fd`].
    pub fn xsks_map_fd(&self) -> BorrowedFd<'_> {
        self.steer.xsks_map_fd()
    }

    /// See [`SteerProgram::counters`].
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        self.steer.counters()
    }

    /// Detaches the program from the interface. If another program has replaced it since,
    /// or the interface is gone, there is nothing to detach and that is not an error.
    pub fn detach(mut self) -> Result<(), XdpError> {
        self.detach_once()
    }

    fn detach_once(&mut self) -> Result<(), XdpError> {
        if !self.attached {
            return Ok(());
        }
        self.attached = false;
        // Look first, so the usual "replaced by a newer run" case does not make libbpf log a
        // kernel error; detach_if_current still makes the kernel check, against races.
        let ours = self.steer.prog_id().ok();
        let current =
            Xdp::new(self.steer.prog_fd()).query_id(self.ifindex as i32, self.mode.flag());
        let rc = match current {
            Ok(id) if Some(id) != ours => -libc::EEXIST,
            _ => detach_if_current(self.ifindex, self.mode.flag(), self.steer.prog_fd()),
        };
        match -rc {
            0 => {
                debug!(
                    "XDP program {PROGRAM_NAME} detached from {} ({} mode)",
                    self.interface, self.mode
                );
                Ok(())
            }
            libc::EEXIST => {
                warn!(
                    "{}: the XDP program {PROGRAM_NAME} was already replaced by another one; \
                     left that one attached",
                    self.interface
                );
                Ok(())
            }
            libc::ENODEV | libc::ENOENT => {
                debug!(
                    "{}: interface gone; no XDP program to detach",
                    self.interface
                );
                Ok(())
            }
            errno => Err(XdpError::Bpf {
                operation: "detaching the XDP program",
                source: std::io::Error::from_raw_os_error(errno).into(),
            }),
        }
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        if let Err(err) = self.detach_once() {
            error!("{}: {err}", self.interface);
        }
    }
}

impl SteerProgram {
    /// Attaches the loaded program to `interface` in `mode`.
    ///
    /// An XDP program already attached (in any mode) is handled first: a copy of rotor's own
    /// program (same [`PROGRAM_NAME`], left by a crashed run) is detached and the replacement
    /// logged; a program of another name is refused with [`XdpError::ForeignProgram`] unless
    /// `options.replace_foreign`.
    pub fn attach(
        self,
        interface: impl Into<Interface>,
        mode: AttachMode,
        options: LoadOptions,
    ) -> Result<XdpProgram, XdpError> {
        let (ifindex, name) = interface.into().resolve()?;
        let replaced_prog_id = self.remove_previous(ifindex, &name, options)?;
        let xdp = Xdp::new(self.prog_fd());
        let try_mode = |attached: AttachedMode| {
            xdp.attach(
                ifindex as i32,
                attached.flag() | XdpFlags::UPDATE_IF_NOEXIST,
            )
        };
        let attached = match mode {
            AttachMode::Native | AttachMode::Generic => {
                let wanted = if mode == AttachMode::Native {
                    AttachedMode::Native
                } else {
                    AttachedMode::Generic
                };
                try_mode(wanted).map_err(|source| XdpError::Attach {
                    interface: name.clone(),
                    mode: if wanted == AttachedMode::Native {
                        "native"
                    } else {
                        "generic"
                    },
                    source,
                })?;
                wanted
            }
            AttachMode::Auto => match try_mode(AttachedMode::Native) {
                Ok(()) => AttachedMode::Native,
                Err(native) => {
                    debug!("{name}: native XDP attach failed ({native}); trying generic");
                    try_mode(AttachedMode::Generic).map_err(|generic| XdpError::AttachAuto {
                        interface: name.clone(),
                        native,
                        generic,
                    })?;
                    AttachedMode::Generic
                }
            },
        };
        debug!(
            "XDP program {PROGRAM_NAME} attached to {name} (ifindex {ifindex}) in {attached} mode"
        );
        Ok(XdpProgram {
            steer: self,
            ifindex,
            interface: name,
            mode: attached,
            replaced_prog_id,
            attached: true,
        })
    }

    /// Detaches whatever XDP program the interface runs, if allowed; returns its id.
    fn remove_previous(
        &self,
        ifindex: u32,
        interface: &str,
        options: LoadOptions,
    ) -> Result<Option<u32>, XdpError> {
        let query = Xdp::new(self.prog_fd())
            .query(ifindex as i32, XdpFlags::NONE)
            .map_err(XdpError::bpf("querying the interface's XDP programs"))?;
        let mut replaced = None;
        for (id, flag) in [
            (query.drv_prog_id, XdpFlags::DRV_MODE),
            (query.skb_prog_id, XdpFlags::SKB_MODE),
            (query.hw_prog_id, XdpFlags::HW_MODE),
        ] {
            if id == 0 {
                continue;
            }
            let fd = match libbpf_rs::Program::fd_from_id(id) {
                Ok(fd) => fd,
                // Detached and freed since the query: nothing to replace.
                Err(error) if error.kind() == libbpf_rs::ErrorKind::NotFound => continue,
                Err(error) => return Err(XdpError::bpf("opening the attached XDP program")(error)),
            };
            let name = program_name(fd.as_fd())?;
            if name == PROGRAM_NAME {
                // The caller reports it (`replaced_prog_id`), as rotord does.
                debug!(
                    "{interface}: replacing a stale {PROGRAM_NAME} XDP program (id {id}, left by \
                     an earlier run)"
                );
            } else if options.replace_foreign {
                warn!(
                    "{interface}: replacing the foreign XDP program \"{name}\" (id {id}), as \
                     asked"
                );
            } else {
                return Err(XdpError::ForeignProgram {
                    interface: interface.to_owned(),
                    id,
                    name,
                });
            }
            let rc = detach_if_current(ifindex, flag, fd.as_fd());
            // EEXIST: it was replaced meanwhile; the attach below then reports the newcomer.
            if rc != 0 && -rc != libc::EEXIST {
                return Err(XdpError::Bpf {
                    operation: "detaching the previous XDP program",
                    source: std::io::Error::from_raw_os_error(-rc).into(),
                });
            }
            replaced = Some(id);
        }
        Ok(replaced)
    }
}

/// Detaches the program `expected` from `ifindex` in the mode of `mode_flag`, only if it is
/// the one attached there (the kernel compares under its lock). Returns 0 or a negative errno.
pub(crate) fn detach_if_current(
    ifindex: u32,
    mode_flag: XdpFlags,
    expected: BorrowedFd<'_>,
) -> i32 {
    let opts = libbpf_sys::bpf_xdp_attach_opts {
        sz: size_of::<libbpf_sys::bpf_xdp_attach_opts>() as libbpf_sys::size_t,
        // A non-zero old_prog_fd makes libbpf add XDP_FLAGS_REPLACE.
        old_prog_fd: expected.as_raw_fd(),
        ..Default::default()
    };
    // Safety: opts is a properly sized, initialised bpf_xdp_attach_opts that outlives the
    // call, and `expected` is an open program fd for the duration of the call.
    unsafe { libbpf_sys::bpf_xdp_detach(ifindex as i32, mode_flag.bits(), &opts) }
}

/// The kernel's name of the program behind `fd`.
pub(crate) fn program_name(fd: BorrowedFd<'_>) -> Result<String, XdpError> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // Safety: `info` is a writable bpf_prog_info of `len` bytes, and the kernel writes at most
    // `len` bytes into it; `fd` is an open program fd for the duration of the call.
    let rc = unsafe {
        libbpf_sys::bpf_obj_get_info_by_fd(
            fd.as_raw_fd(),
            (&mut info as *mut libbpf_sys::bpf_prog_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(XdpError::Bpf {
            operation: "reading the attached XDP program's info",
            source: std::io::Error::from_raw_os_error(-rc).into(),
        });
    }
    // The kernel NUL-terminates the name within its 16 bytes.
    let bytes: Vec<u8> = info
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

//! The XDP program loaded into the kernel (not attached to any interface) and its maps.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use libbpf_rs::{MapCore, MapFlags, MapHandle, Object, ObjectBuilder, ProgramInput};

use crate::{
    Counter, Source, SourceKey, SourceValue, SteerMaps, UnknownSource, XdpError, COUNTERS_MAP_NAME,
    FILTER_MAP_NAME, PORTS_MAP_NAME, PORT_COUNT_MAX, PROGRAM_NAME, SOURCES_MAP_NAME,
    SOURCE_COUNT_MAX, XSKS_MAP_NAME,
};

/// The BPF object compiled from `bpf/xdp_steer.c` by build.rs.
static OBJECT_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xdp_steer.o"));

/// Counters of the XDP program, summed over all CPUs since it was loaded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpCounters {
    /// Cluster frames redirected to an AF_XDP socket.
    pub redirected: u64,
    /// Frames that are not cluster traffic, passed to the kernel.
    pub passed: u64,
    /// Truncated or malformed frames, passed to the kernel.
    pub not_parsed: u64,
    /// Cluster frames on a queue without an AF_XDP socket, passed to the kernel.
    pub no_socket: u64,
    /// Cluster-port frames from an address outside the source filter's, passed to the kernel.
    pub unknown_source_passed: u64,
    /// Cluster-port frames from an address outside the source filter's, dropped.
    pub unknown_source_dropped: u64,
}

impl XdpCounters {
    /// The value of one counter.
    pub fn get(&self, counter: Counter) -> u64 {
        match counter {
            Counter::Redirected => self.redirected,
            Counter::Passed => self.passed,
            Counter::NotParsed => self.not_parsed,
            Counter::NoSocket => self.no_socket,
            Counter::UnknownSourcePassed => self.unknown_source_passed,
            Counter::UnknownSourceDropped => self.unknown_source_dropped,
        }
    }

    /// Every counter with its name ([`Counter::name`]), in map index order.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Counter::ALL.iter().map(|&c| (c.name(), self.get(c)))
    }
}

/// The verdict of one run of the program (the kernel's `enum xdp_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpAction {
    Aborted,
    Drop,
    Pass,
    Tx,
    Redirect,
    /// A value the kernel does not define; the program never returns one.
    Unknown(u32),
}

impl XdpAction {
    /// The action for the kernel's numeric value.
    pub fn from_raw(value: u32) -> XdpAction {
        match value {
            0 => XdpAction::Aborted,
            1 => XdpAction::Drop,
            2 => XdpAction::Pass,
            3 => XdpAction::Tx,
            4 => XdpAction::Redirect,
            other => XdpAction::Unknown(other),
        }
    }
}

/// The steering program loaded into the kernel with its maps, not attached to an interface.
/// [`SteerProgram::attach`] turns it into an attached [`crate::XdpProgram`]; on its own it
/// serves `BPF_PROG_TEST_RUN` ([`SteerProgram::test_run`]).
///
/// Dropping it releases the program and maps (the kernel frees them once nothing else holds
/// them; an attached interface does).
pub struct SteerProgram {
    object: Object,
    /// A duplicate of the program's fd, so borrowing it does not borrow `object`.
    prog_fd: OwnedFd,
    ports: MapHandle,
    sources: MapHandle,
    filter: MapHandle,
    /// Duplicates of the `xsks` and `counters` map fds: the operations a dataplane also does
    /// on inherited maps, in one place.
    maps: SteerMaps,
}

impl SteerProgram {
    /// Loads the program into the kernel (verifier included) with `ports` as the cluster ports.
    pub fn load(ports: &[u16]) -> Result<SteerProgram, XdpError> {
        crate::route_libbpf_output();
        let ports_wanted = validate_ports(ports)?;
        let open = ObjectBuilder::default()
            .name("rotor_xdp")
            .map_err(XdpError::Load)?
            .open_memory(OBJECT_BYTES)
            .map_err(XdpError::Load)?;
        let object = open.load().map_err(XdpError::Load)?;
        let map_handle = |name: &'static str| -> Result<MapHandle, XdpError> {
            let map = object
                .maps()
                .find(|map| map.name() == name)
                .unwrap_or_else(|| panic!("the embedded BPF object defines the map {name}"));
            MapHandle::try_from(&map).map_err(XdpError::bpf("duplicating a map fd"))
        };
        // Asserts the embedded object, not the world: it holds the program the loader expects.
        let prog_fd = object
            .progs()
            .find(|p| p.name() == PROGRAM_NAME)
            .expect("the embedded BPF object defines the program")
            .as_fd()
            .try_clone_to_owned()
            .map_err(|error| XdpError::bpf("duplicating the program fd")(error.into()))?;
        let map_fd = |name: &'static str| -> Result<OwnedFd, XdpError> {
            map_handle(name)?
                .as_fd()
                .try_clone_to_owned()
                .map_err(|error| XdpError::bpf("duplicating a map fd")(error.into()))
        };
        let maps = SteerMaps::from_fds(map_fd(XSKS_MAP_NAME)?, map_fd(COUNTERS_MAP_NAME)?)?;
        let program = SteerProgram {
            prog_fd,
            ports: map_handle(PORTS_MAP_NAME)?,
            sources: map_handle(SOURCES_MAP_NAME)?,
            filter: map_handle(FILTER_MAP_NAME)?,
            maps,
            object,
        };
        program.write_ports(&ports_wanted)?;
        Ok(program)
    }

    /// Replaces the set of cluster UDP destination ports. Frames already in flight may see
    /// either set; during the update a port being added or removed may briefly be absent.
    pub fn set_ports(&self, ports: &[u16]) -> Result<(), XdpError> {
        let ports_wanted = validate_ports(ports)?;
        self.write_ports(&ports_wanted)
    }

    /// The cluster ports currently in the `ports` map, ascending.
    pub fn ports(&self) -> Result<Vec<u16>, XdpError> {
        let mut ports: Vec<u16> = self
            .ports
            .keys()
            .filter_map(|key| Some(u16::from_ne_bytes(key.as_slice().try_into().ok()?)))
            .collect();
        ports.sort_unstable();
        Ok(ports)
    }

    /// Turns the source filter on with `sources` as the cluster's addresses (replacing what
    /// the map held) and `unknown` for frames to a cluster port from any other address. The
    /// addresses are written before the filter is switched on, and on a later call the new
    /// ones are added before the old ones go, so no frame of an address in both lists is ever
    /// refused. An address listed twice keeps its first entry.
    pub fn set_sources(&self, sources: &[Source], unknown: UnknownSource) -> Result<(), XdpError> {
        let wanted = source_entries(sources)?;
        for (key, value) in &wanted {
            self.sources
                .update(&key.0, &value.0, MapFlags::ANY)
                .map_err(XdpError::bpf("adding an address to the sources map"))?;
        }
        for key in self.source_keys() {
            if !wanted.contains_key(&key) {
                self.sources
                    .delete(&key.0)
                    .map_err(XdpError::bpf("removing an address from the sources map"))?;
            }
        }
        self.filter
            .update(
                &0u32.to_ne_bytes(),
                &unknown.raw().to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(XdpError::bpf("switching the source filter on"))
    }

    /// The addresses in the `sources` map, sorted.
    pub fn sources(&self) -> Result<Vec<Source>, XdpError> {
        let mut out = Vec::new();
        for key in self.source_keys() {
            let Some(addr) = key.addr() else { continue };
            let value = self
                .sources
                .lookup(&key.0, MapFlags::ANY)
                .map_err(XdpError::bpf("reading the sources map"))?;
            // Removed since the keys were listed.
            let Some(value) = value.and_then(|v| <[u8; SourceValue::SIZE]>::try_from(v).ok())
            else {
                continue;
            };
            let (node_id, link) = SourceValue(value).node_and_link();
            out.push(Source {
                addr,
                node_id,
                link,
            });
        }
        out.sort_unstable();
        Ok(out)
    }

    /// What the source filter does with unknown sources; `None` while it is off (as loaded).
    pub fn unknown_source(&self) -> Result<Option<UnknownSource>, XdpError> {
        let value = self
            .filter
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(XdpError::bpf("reading the filter map"))?;
        Ok(value
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .and_then(|v| UnknownSource::from_raw(u32::from_ne_bytes(v))))
    }

    fn source_keys(&self) -> Vec<SourceKey> {
        self.sources
            .keys()
            .filter_map(|k| Some(SourceKey(k.as_slice().try_into().ok()?)))
            .collect()
    }

    /// See [`SteerMaps::insert_xsk`].
    pub fn insert_xsk(&self, queue_index: u32, xsk: BorrowedFd<'_>) -> Result<(), XdpError> {
        self.maps.insert_xsk(queue_index, xsk)
    }

    /// See [`SteerMaps::remove_xsk`].
    pub fn remove_xsk(&self, queue_index: u32) -> Result<(), XdpError> {
        self.maps.remove_xsk(queue_index)
    }

    /// The `xsks` and `counters` maps (their fds are what rotord hands to its dataplane).
    pub fn maps(&self) -> &SteerMaps {
        &self.maps
    }

    /// The fd of the `xsks` map, for a dataplane that manages the map itself (for example
    /// through xsk-rs): key `u32` queue index, value `u32` AF_XDP socket fd.
    pub fn xsks_map_fd(&self) -> BorrowedFd<'_> {
        self.maps.xsks_fd()
    }

    /// The fd of the loaded program.
    pub fn prog_fd(&self) -> BorrowedFd<'_> {
        self.prog_fd.as_fd()
    }

    /// The kernel's id of the loaded program (as `bpftool prog` shows it).
    pub fn prog_id(&self) -> Result<u32, XdpError> {
        libbpf_rs::Program::id_from_fd(self.prog_fd())
            .map_err(XdpError::bpf("querying the program id"))
    }

    /// See [`SteerMaps::counters`].
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        self.maps.counters()
    }

    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN` (receive queue 0, no
    /// interface) and returns its verdict; the counters count the run. The kernel refuses
    /// frames shorter than an Ethernet header (14 bytes) or longer than about a page.
    pub fn test_run(&self, frame: &[u8]) -> Result<XdpAction, XdpError> {
        let input = ProgramInput {
            data_in: Some(frame),
            ..ProgramInput::default()
        };
        let output = self
            .program()
            .test_run(input)
            .map_err(XdpError::bpf("BPF_PROG_TEST_RUN"))?;
        Ok(XdpAction::from_raw(output.return_value))
    }

    fn program(&self) -> libbpf_rs::ProgramMut<'_> {
        self.object
            .progs_mut()
            .find(|p| p.name() == PROGRAM_NAME)
            .expect("checked at load")
    }

    fn write_ports(&self, ports_wanted: &BTreeSet<u16>) -> Result<(), XdpError> {
        // Remove first: the map holds at most PORT_COUNT_MAX entries.
        for port in self.ports()? {
            if !ports_wanted.contains(&port) {
                self.ports
                    .delete(&port.to_ne_bytes())
                    .map_err(XdpError::bpf("removing a port from the ports map"))?;
            }
        }
        for port in ports_wanted {
            self.ports
                .update(&port.to_ne_bytes(), &[1u8], MapFlags::ANY)
                .map_err(XdpError::bpf("adding a port to the ports map"))?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for SteerProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SteerProgram")
            .field("prog_id", &self.prog_id().ok())
            .field("ports", &self.ports().ok())
            .finish()
    }
}

/// The map entries of `sources`, checked against the map's size; the first entry of an
/// address wins.
fn source_entries(
    sources: &[Source],
) -> Result<std::collections::BTreeMap<SourceKey, SourceValue>, XdpError> {
    let mut entries = std::collections::BTreeMap::new();
    for s in sources {
        entries
            .entry(SourceKey::of(s.addr))
            .or_insert_with(|| SourceValue::of(s.node_id, s.link));
    }
    if entries.len() > SOURCE_COUNT_MAX {
        return Err(XdpError::InvalidSources(format!(
            "{} distinct addresses, at most {SOURCE_COUNT_MAX}",
            entries.len()
        )));
    }
    Ok(entries)
}

fn validate_ports(ports: &[u16]) -> Result<BTreeSet<u16>, XdpError> {
    let set: BTreeSet<u16> = ports.iter().copied().collect();
    if set.contains(&0) {
        return Err(XdpError::InvalidPorts(
            "port 0 is not a UDP destination port".into(),
        ));
    }
    if set.len() > PORT_COUNT_MAX {
        return Err(XdpError::InvalidPorts(format!(
            "{} distinct ports, at most {PORT_COUNT_MAX}",
            set.len()
        )));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_validated_without_the_kernel() {
        assert_eq!(validate_ports(&[5405, 5405, 5406]).unwrap().len(), 2);
        assert!(matches!(
            validate_ports(&[0]),
            Err(XdpError::InvalidPorts(_))
        ));
        let too_many: Vec<u16> = (1..=PORT_COUNT_MAX as u16 + 1).collect();
        assert!(matches!(
            validate_ports(&too_many),
            Err(XdpError::InvalidPorts(_))
        ));
        assert!(validate_ports(&[]).unwrap().is_empty());
    }

    #[test]
    fn source_entries_keep_the_first_of_an_address_and_are_bounded() {
        let a = |last: u8| std::net::IpAddr::from([198, 18, 0, last]);
        let entries = source_entries(&[
            Source {
                addr: a(1),
                node_id: 1,
                link: 0,
            },
            Source {
                addr: a(1),
                node_id: 9,
                link: 1,
            },
            Source {
                addr: "2001:2::1".parse().unwrap(),
                node_id: 1,
                link: 1,
            },
        ])
        .unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[&SourceKey::of(a(1))].node_and_link(), (1, 0));
        let too_many: Vec<Source> = (0..=SOURCE_COUNT_MAX as u32)
            .map(|i| Source {
                addr: std::net::IpAddr::from(i.to_be_bytes()),
                node_id: i,
                link: 0,
            })
            .collect();
        assert!(matches!(
            source_entries(&too_many),
            Err(XdpError::InvalidSources(_))
        ));
        assert_eq!(
            source_entries(&too_many[1..]).unwrap().len(),
            SOURCE_COUNT_MAX
        );
    }

    #[test]
    fn embedded_object_is_a_bpf_elf() {
        // ELF magic, 64-bit, machine EM_BPF (247) at offset 18.
        assert_eq!(&OBJECT_BYTES[..4], b"\x7fELF");
        assert_eq!(OBJECT_BYTES[4], 2);
        assert_eq!(
            u16::from_le_bytes([OBJECT_BYTES[18], OBJECT_BYTES[19]]),
            247
        );
    }
}

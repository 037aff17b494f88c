//! rotor-dataplane: the dataplane process (AF_XDP and kernel-UDP providers, frame building,
//! the pinned poll loop running totem-core, fan-out to client rings). Not yet implemented (issue 4).

//! rotor-hwtest: tests that need a real NIC (zero-copy AF_XDP, several queues). They run when
//! `ROTOR_HWTEST_IFACE` names an interface and skip with that message otherwise.

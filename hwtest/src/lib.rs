//! rotor-hwtest: tests that need a real NIC (zero-copy AF_XDP, several queues, need_wakeup).
//! None are written yet: they come with the AF_XDP dataplane (issue 4), will run when
//! `ROTOR_HWTEST_IFACE` names an interface, and will skip with that message otherwise.

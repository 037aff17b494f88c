//! totem-core: the Totem single-ring protocol as a sans-IO state machine.

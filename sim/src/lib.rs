//! rotor-sim: the seeded deterministic simulator that drives many totem-core nodes.

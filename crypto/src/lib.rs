//! rotor-crypto: per-frame authentication and encryption of cluster traffic. Not yet implemented.

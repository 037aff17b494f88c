//! ipc-shm: shared-memory rings between applications, rotord and the dataplane, and the
//! credential-checked attach handshake, both ends. Not yet implemented (issue 3); it deliberately
//! knows nothing of Totem or of the wire format.

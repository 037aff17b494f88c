//! rotor-control: the control process `rotord` (config, cmap, quorum, supervision, attach
//! broker). Not yet implemented (issue 5); it deliberately stays off the packet fast path.

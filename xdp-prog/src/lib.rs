//! xdp-prog: the XDP steering program (C, compiled by clang at build time) and its loader.
//! Not yet implemented (issue 4); it deliberately does no packet processing beyond steering.

//! corosync's common C types and constants (`cs_error_t`, `cs_dispatch_flags_t`,
//! `cs_name_t` …), generated at build time from the installed `corosync/corotypes.h`.
#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/corotypes.rs"));

fn main() {
    rotor_capi_build::c_types("corosync/cpg.h", "cpg.rs");
    rotor_capi_build::link("libcpg.so.4", "libcpg.versions");
}

fn main() {
    rotor_capi_build::c_types("corosync/quorum.h", "quorum.rs");
    rotor_capi_build::link("libquorum.so.5", "libquorum.versions");
}

fn main() {
    rotor_capi_build::c_types("corosync/cmap.h", "cmap.rs");
    rotor_capi_build::link("libcmap.so.4", "libcmap.versions");
}

fn main() {
    rotor_capi_build::c_types("corosync/sam.h", "sam.rs");
    rotor_capi_build::link("libsam.so.4", "libsam.versions");
}

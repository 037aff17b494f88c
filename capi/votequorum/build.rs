fn main() {
    rotor_capi_build::c_types("corosync/votequorum.h", "votequorum.rs");
    rotor_capi_build::link("libvotequorum.so.8", "libvotequorum.versions");
}

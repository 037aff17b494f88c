fn main() {
    rotor_capi_build::c_types("corosync/cfg.h", "cfg.rs");
    rotor_capi_build::link("libcfg.so.7", "libcfg.versions");
}

fn main() {
    rotor_capi_build::c_types("corosync/corotypes.h", "corotypes.rs");
}

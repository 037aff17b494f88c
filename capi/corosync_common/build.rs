fn main() {
    // corosync builds this library without a version script: no symbol versions.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcorosync_common.so.4");
}

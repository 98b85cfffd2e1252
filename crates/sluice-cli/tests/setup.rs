//! `scripts/setup` finds libclang the way pg_query's bindgen loads it, and Chromium.

use std::path::Path;

fn missing_under(root: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg("--print-missing")
        .env("SETUP_ROOT", root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn touch(root: &Path, path: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, b"").unwrap();
}

#[test]
fn libclang_cpp_alone_is_not_libclang() {
    let root = tempfile::tempdir().unwrap();
    touch(root.path(), "usr/lib/x86_64-linux-gnu/libclang-cpp.so.14");
    touch(root.path(), "usr/lib/llvm-14/lib/libclang-cpp.so.14");
    assert!(missing_under(root.path()).contains("libclang-dev"));
}

#[test]
fn libclang_without_clangs_headers_is_not_enough() {
    let root = tempfile::tempdir().unwrap();
    touch(root.path(), "usr/lib/x86_64-linux-gnu/libclang-14.so.1");
    assert!(missing_under(root.path()).contains("libclang-dev"));
}

#[test]
fn libclang_with_its_headers_is_found() {
    let root = tempfile::tempdir().unwrap();
    touch(root.path(), "usr/lib/llvm-14/lib/libclang.so.1");
    touch(
        root.path(),
        "usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h",
    );
    touch(root.path(), "usr/include/openssl/ssl.h");
    assert!(!missing_under(root.path()).contains("libclang-dev"));
}

#[test]
fn chromium_is_installed_when_missing_and_not_when_there() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    assert!(missing_under(root.path()).contains("chromium"));
    touch(root.path(), "usr/bin/chromium");
    let browser = root.path().join("usr/bin/chromium");
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!missing_under(root.path()).contains("chromium"));
}

//! Generates the bindings from the installed liblinphone headers (Debian: liblinphone-dev).

use std::path::PathBuf;
use std::process::Command;

const INSTALL_HINT: &str = "install liblinphone-dev and libclang-dev (Debian/Ubuntu: \
     apt-get install liblinphone-dev libclang-dev), or run `cargo xtask test` as root";

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let cflags = match Command::new("pkg-config")
        .args(["--cflags", "linphone"])
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => panic!(
            "pkg-config cannot find liblinphone ({}): {INSTALL_HINT}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("cannot run pkg-config ({e}): {INSTALL_HINT}"),
    };

    // Debian's linphone.pc has an empty `Libs:` line, so the libraries are named here.
    // bctoolbox provides the list helpers (`bctbx_list_*`) the C API returns.
    println!("cargo:rustc-link-lib=linphone");
    println!("cargo:rustc-link-lib=bctoolbox");
    // mediastreamer2: the audio stream's ticker (see wrapper.h).
    println!("cargo:rustc-link-lib=mediastreamer");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(cflags.split_whitespace())
        .allowlist_function("linphone_.*")
        .allowlist_type("Linphone.*")
        .allowlist_var("LINPHONE_.*")
        .allowlist_function("bctbx_list_(next|get_data|free|free_with_data|size)")
        .allowlist_function("bctbx_free")
        .allowlist_function("ms_ticker_(new_with_params|destroy|set_tick_func)")
        .allowlist_type("MSTickerParams")
        .allowlist_type("MediaStream")
        .allowlist_type("MSStreamState")
        // Deprecated entry points stay out: the generated file is smaller and nobody
        // reaches for an API liblinphone is about to drop.
        .blocklist_function("linphone_core_.*_proxy_config.*")
        .blocklist_function("linphone_proxy_config_.*")
        .blocklist_function("linphone_chat_.*")
        .blocklist_function("linphone_(friend|friend_list|presence|vcard|ldap|magic_search|search_result|conference|participant|event_log|push_notification|account_creator|xml_rpc|tunnel|content|buffer|info_message|event|dial_plan|im_|chat)_.*")
        // Plain integer constants, named as in C: a value the headers do not list (a newer
        // library) must not become an invalid Rust enum.
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(false)
        .layout_tests(false)
        .generate_comments(false)
        .merge_extern_blocks(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on the liblinphone headers ({e}): {INSTALL_HINT}"));

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("cannot write the generated bindings");
}

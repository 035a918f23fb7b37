//! Tauri's build step. The interface is embedded from `ui/dist` (built by `npm run build`
//! in `ui/`, which `cargo xtask run|test` do first); when it is missing, a page saying how
//! to build it stands in, so `cargo check` and clippy work on a fresh clone.

fn main() {
    let dist = std::path::Path::new("../ui/dist");
    if !dist.join("index.html").exists() {
        let _ = std::fs::create_dir_all(dist);
        let _ = std::fs::write(
            dist.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>CallHelper</title>\
             <p>The interface is not built: run <code>npm ci &amp;&amp; npm run build</code> in <code>ui/</code> \
             (or <code>cargo xtask run</code>).</p>",
        );
    }
    tauri_build::build()
}

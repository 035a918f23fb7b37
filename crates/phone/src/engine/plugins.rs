//! mediastreamer2's plugins, less the video ones. The phone has no video, and the video
//! plugins pull in whole toolkits when loaded (Debian's `libmsqogl.so`, a Qt/OpenGL video
//! window, maps Qt5 into the process: about 8 MiB of the app's idle memory). The engine
//! points mediastreamer2 at a folder of its own holding links to every other plugin the
//! system has, so audio codecs and filters installed as plugins still load.

use std::io;
use std::path::{Path, PathBuf};

/// File-name prefixes of plugins that only show or encode video.
const VIDEO_ONLY: &[&str] = &["libmsqogl", "libmsopenh264", "libmsx264"];

/// Where the system keeps mediastreamer2's plugins: `mediastreamer/plugins` beside the
/// loaded `libmediastreamer` (how Debian and mediastreamer2's own build lay it out).
fn system_plugins() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let lib = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(Path::new)
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libmediastreamer.so"))
        })?;
    Some(lib.parent()?.join("mediastreamer/plugins"))
}

/// Fill `own` (emptied first) with links to the plugins in `system` that are not video
/// only.
fn link_audio_plugins(system: &Path, own: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(own) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir_all(own)?;
    for entry in std::fs::read_dir(system)? {
        let entry = entry?;
        let name = entry.file_name();
        let text = name.to_string_lossy();
        if !text.ends_with(".so") || VIDEO_ONLY.iter().any(|v| text.starts_with(v)) {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), own.join(&name))?;
    }
    Ok(())
}

/// The plugin folder for an engine whose files live in `folder`: `folder/plugins` with the
/// system's plugins less the video ones. `None` when the system's folder is not found or
/// the links cannot be made: mediastreamer2 then keeps its own default (everything loads,
/// as before).
pub(super) fn audio_plugins(folder: &Path) -> Option<PathBuf> {
    let system = system_plugins()?;
    if !system.is_dir() {
        return None;
    }
    let own = folder.join("plugins");
    match link_audio_plugins(&system, &own) {
        Ok(()) => Some(own),
        Err(e) => {
            log::warn!("plugins: kept mediastreamer2's default folder ({e})");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_every_plugin_but_the_video_ones() {
        let dir = std::env::temp_dir().join(format!("callhelper-plugins-{}", std::process::id()));
        let system = dir.join("system");
        std::fs::create_dir_all(&system).unwrap();
        for n in [
            "libmsqogl.so",
            "libmsx264.so",
            "libmsamr.so",
            "libmssilk.so",
            "README",
        ] {
            std::fs::write(system.join(n), b"").unwrap();
        }
        let own = dir.join("engine/plugins");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("libold.so"), b"").unwrap();
        link_audio_plugins(&system, &own).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&own)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["libmsamr.so", "libmssilk.so"]);
        assert_eq!(
            std::fs::read_link(own.join("libmsamr.so")).unwrap(),
            system.join("libmsamr.so")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn finds_the_systems_plugin_folder_beside_the_loaded_library() {
        // This test binary links liblinphone, so libmediastreamer is mapped.
        let found = system_plugins().expect("libmediastreamer is loaded");
        assert!(found.ends_with("mediastreamer/plugins"), "{found:?}");
    }
}

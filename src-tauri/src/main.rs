//! The CallHelper desktop app: a Tauri window around `callhelper_core::desktop`.
//!
//! This crate holds windows, plugins and a command list only. `commands` is the list (each
//! command calls the workspace at once), `shell` the desktop plumbing (tray, global
//! hotkeys, notifications, links, the web view's memory settings), `bindings` writes the
//! interface's TypeScript types from the Rust types.
//!
//! Options: `--data-dir DIR` (else `CALLHELPER_DATA_DIR`, else the OS's data folder);
//! `--print-bindings` prints the generated TypeScript and exits; a `tel:`, `sip:` or
//! `callto:` argument dials it (in the running copy, when there is one).

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod bindings;
mod commands;
mod shell;

use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use callhelper_core::desktop::{DeskEvent, Workspace};
use callhelper_core::paths::DataDir;

/// The event the interface listens on.
pub const EVENT: &str = "desk";

/// The app's state: the workspace (started on a thread of its own while the window
/// loads) and what the shell keeps.
pub struct Desk {
    ws: Mutex<Option<Workspace>>,
    ws_ready: Condvar,
    started: Instant,
    app: tauri::AppHandle,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk").finish_non_exhaustive()
    }
}

impl Desk {
    /// The workspace, waiting for its start-up to finish.
    pub fn ws(&self) -> Workspace {
        let mut ws = self.ws.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(w) = ws.as_ref() {
                return w.clone();
            }
            ws = self.ws_ready.wait(ws).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn set_ws(&self, w: Workspace) {
        *self.ws.lock().unwrap_or_else(|p| p.into_inner()) = Some(w);
        self.ws_ready.notify_all();
    }

    /// The interface painted its first screen.
    pub fn ready(&self) {
        let ms = self.started.elapsed().as_millis();
        log::info!("desktop: interface ready {ms} ms after start");
        if let Some(f) = std::env::var_os("CALLHELPER_READY_FILE") {
            let _ = std::fs::write(f, ms.to_string());
        }
    }

    /// Redraw the tray after a change of status or language.
    pub fn refresh_tray(&self) {
        let ws = self.ws();
        shell::refresh_tray(&self.app, ws.status(), ws.lang());
    }
}

fn typescript() -> String {
    bindings::typescript(commands::signatures, EVENT, bindings::schema::<DeskEvent>)
}

fn main() {
    shell::tune_malloc();
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--print-bindings") {
        print!("{}", typescript());
        return;
    }
    let explicit = args
        .iter()
        .position(|a| a == "--data-dir")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let data = match DataDir::resolve(explicit.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("callhelper-desktop: {}", e.message.en);
            std::process::exit(2);
        }
    };
    shell::tune_webkit_environment();
    let links: Vec<String> = args.iter().filter(|a| shell::is_link(a)).cloned().collect();

    let app = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            shell::show_main(app);
            shell::open_links(app, argv.iter().skip(1).filter(|a| shell::is_link(a)));
        }))
        .plugin(shell::log_plugin(&data))
        .plugin(tauri_plugin_notification::init())
        .plugin(shell::shortcut_plugin())
        .plugin(tauri_plugin_deep_link::init())
        .invoke_handler(commands::handler())
        .setup(move |app| {
            let handle = app.handle().clone();
            app.manage(Desk {
                ws: Mutex::new(None),
                ws_ready: Condvar::new(),
                started,
                app: handle.clone(),
            });
            shell::tune_webview(app);
            // The workspace opens the database and starts the phone while the window loads.
            let data = data.clone();
            std::thread::Builder::new()
                .name("desk-start".into())
                .spawn(move || {
                    let emit_to = handle.clone();
                    let ws = Workspace::start(
                        data,
                        std::sync::Arc::new(move |e| shell::on_event(&emit_to, e)),
                    );
                    let desk = handle.state::<Desk>();
                    desk.set_ws(ws.clone());
                    shell::install_tray(&handle, ws.status(), ws.lang());
                    shell::register_hotkeys(&handle, &ws);
                    shell::register_links(&handle);
                    shell::open_links(&handle, links.iter());
                })?;
            Ok(())
        })
        .build(tauri::generate_context!());
    match app {
        Ok(app) => app.run(|_, _| {}),
        Err(e) => {
            eprintln!("callhelper-desktop: cannot start: {e}");
            std::process::exit(1);
        }
    }
}

use tauri::Manager;

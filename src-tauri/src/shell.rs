//! Desktop plumbing around the workspace: the tray with the agent's status, global hotkeys,
//! native notifications, `tel:`/`sip:`/`callto:` links, the rotating log file, and the web
//! view's memory settings. Nothing here decides anything about calls or scripts.

use callhelper_core::desktop::{AgentStatus, DeskEvent, Workspace};
use callhelper_core::paths::DataDir;
use callhelper_core::script::{Lang, Text};
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, Runtime};

use crate::{Desk, EVENT};

const TRAY: &str = "status";

fn t(lang: Lang, en: &str, ru: &str) -> String {
    Text::new(en, ru).get(lang).to_owned()
}

/// glibc's allocator, set before any thread starts. By default it raises its mmap
/// threshold to the size of the largest block freed (up to 32 MiB): after the store's
/// password hashes (Argon2, ~20 MiB each, made at the first start and at each sign-in)
/// their memory then stays in the heap for good, ~38 MiB of the idle app. A fixed threshold
/// keeps large blocks in their own mappings, returned to the system when freed, and a
/// fixed trim threshold gives back the top of the heap.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::ffi::c_int;
        unsafe extern "C" {
            fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        const M_TRIM_THRESHOLD: c_int = -1;
        const M_MMAP_THRESHOLD: c_int = -3;
        // SAFETY: mallopt only sets allocator parameters; called first thing in `main`.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 256 * 1024);
            mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
        }
    }
}

/// WebKitGTK settings that must be in the environment before GTK starts: software
/// rendering without the compositor's GPU buffers (less memory; the interface is plain
/// HTML), and no DMA-BUF renderer (it fails on some X servers and virtual displays).
/// A value already set by the user wins.
pub fn tune_webkit_environment() {
    for (k, v) in [
        ("WEBKIT_DISABLE_COMPOSITING_MODE", "1"),
        ("WEBKIT_DISABLE_DMABUF_RENDERER", "1"),
    ] {
        if std::env::var_os(k).is_none()
            && std::env::var("CALLHELPER_WEBKIT_DEFAULTS").as_deref() != Ok("0")
        {
            // SAFETY: called first thing in `main`, before any other thread exists.
            unsafe { std::env::set_var(k, v) };
        }
    }
}

/// The web view's settings that cut memory: a document-viewer cache, no page cache, no
/// WebGL, and no hardware acceleration.
pub fn tune_webview(app: &tauri::App) {
    let Some(window) = app.get_webview_window("main") else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        let result = window.with_webview(|pw| {
            use webkit2gtk::{
                CacheModel, HardwareAccelerationPolicy, SettingsExt, WebContextExt, WebViewExt,
            };
            let view = pw.inner();
            if let Some(s) = WebViewExt::settings(&view) {
                s.set_enable_page_cache(false);
                s.set_enable_webgl(false);
                s.set_enable_developer_extras(cfg!(debug_assertions));
                s.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
                s.set_enable_dns_prefetching(false);
            }
            if let Some(ctx) = view.context() {
                ctx.set_cache_model(CacheModel::DocumentViewer);
            }
        });
        if let Err(e) = result {
            log::warn!("desktop: web view settings not applied: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = window;
}

/// The rotating log file in `<data>/logs/` (2 MB a file, five kept). Log lines carry ids,
/// never numbers, names or field values (the core and the phone write them that way).
pub fn log_plugin<R: Runtime>(data: &DataDir) -> tauri::plugin::TauriPlugin<R> {
    use tauri_plugin_log::{RotationStrategy, Target, TargetKind};
    let mut b = tauri_plugin_log::Builder::new()
        .clear_targets()
        .target(Target::new(TargetKind::Folder {
            path: data.root().join("logs"),
            file_name: Some("callhelper".into()),
        }))
        .max_file_size(2_000_000)
        .rotation_strategy(RotationStrategy::KeepSome(5))
        .level(log::LevelFilter::Info)
        .level_for("tauri", log::LevelFilter::Warn)
        .level_for("wry", log::LevelFilter::Warn)
        .level_for("tao", log::LevelFilter::Warn)
        .level_for("linphone", log::LevelFilter::Warn);
    if cfg!(debug_assertions) {
        b = b.target(Target::new(TargetKind::Stderr));
    }
    b.build()
}

/// The global-shortcut plugin; the hotkeys are registered once the workspace is up.
pub fn shortcut_plugin() -> tauri::plugin::TauriPlugin<tauri::Wry> {
    use tauri_plugin_global_shortcut::{Builder, ShortcutState};
    Builder::new()
        .with_handler(|app, shortcut, event| {
            if event.state != ShortcutState::Pressed {
                return;
            }
            let ws = app.state::<Desk>().ws();
            let keys = ws.hotkeys();
            let is = |s: &str| {
                s.parse::<tauri_plugin_global_shortcut::Shortcut>()
                    .is_ok_and(|k| k.id() == shortcut.id())
            };
            let result = if is(&keys.answer) {
                ws.answer_ringing()
            } else if is(&keys.hang_up) {
                ws.hang_up_current()
            } else {
                Ok(())
            };
            if let Err(e) = result {
                log::warn!("desktop: hotkey action failed ({})", e.code);
            }
        })
        .build()
}

/// Register the global hotkeys to answer and hang up.
pub fn register_hotkeys(app: &AppHandle, ws: &Workspace) {
    use tauri_plugin_global_shortcut::GlobalShortcutExt;
    let keys = ws.hotkeys();
    for k in [&keys.answer, &keys.hang_up] {
        if let Err(e) = app.global_shortcut().register(k.as_str()) {
            // Wayland sessions and keys taken by another program end here.
            log::warn!("desktop: global hotkey {k} not registered: {e}");
        }
    }
}

/// Whether an argument is a link the app dials.
pub fn is_link(arg: &str) -> bool {
    let lower = arg.to_ascii_lowercase();
    ["tel:", "sip:", "sips:", "callto:"]
        .iter()
        .any(|s| lower.starts_with(s))
}

/// Dial the links given (on the command line, or to a second copy of the app).
pub fn open_links<'a>(app: &AppHandle, links: impl Iterator<Item = &'a String>) {
    let links: Vec<String> = links.cloned().collect();
    if links.is_empty() {
        return;
    }
    let app = app.clone();
    // Off the main thread: the workspace may still be starting.
    std::thread::spawn(move || {
        let ws = app.state::<Desk>().ws();
        for l in links {
            if let Err(e) = ws.open_link(&l) {
                log::warn!("desktop: link not dialled ({})", e.code);
                let _ = app.emit(EVENT, DeskEvent::Notice { text: e.message });
            }
        }
    });
}

/// Make this program the handler of `tel:`, `sip:` and `callto:` links (Linux and Windows
/// register at run time; macOS takes them from the bundle).
pub fn register_links(app: &AppHandle) {
    #[cfg(any(target_os = "linux", windows))]
    {
        use tauri_plugin_deep_link::DeepLinkExt;
        if std::env::var("CALLHELPER_REGISTER_LINKS").as_deref() == Ok("0") {
            return;
        }
        if let Err(e) = app.deep_link().register_all() {
            log::warn!("desktop: links not registered: {e}");
        }
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    let _ = app;
}

/// Bring the main window to the front.
pub fn show_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Push a workspace event to the interface, with the desktop's side effects: a native
/// notification and the window brought forward for an incoming call, the tray for a
/// change of status.
pub fn on_event(app: &AppHandle, e: DeskEvent) {
    match &e {
        DeskEvent::Incoming { call } => {
            use tauri_plugin_notification::NotificationExt;
            let lang = app.state::<Desk>().ws().lang();
            let who = call
                .contact
                .as_ref()
                .map(|c| match &c.company {
                    Some(co) => format!("{} ({co})", c.name),
                    None => c.name.clone(),
                })
                .unwrap_or_else(|| call.number.clone());
            if let Err(e) = app
                .notification()
                .builder()
                .title(t(lang, "Incoming call", "Входящий звонок"))
                .body(who)
                .show()
            {
                log::warn!("desktop: notification not shown: {e}");
            }
            show_main(app);
        }
        DeskEvent::Status { status } => {
            let lang = app.state::<Desk>().ws().lang();
            refresh_tray(app, *status, lang);
        }
        _ => {}
    }
    if let Err(err) = app.emit(EVENT, &e) {
        log::warn!("desktop: event not delivered: {err}");
    }
}

fn status_icon(status: AgentStatus) -> Option<tauri::image::Image<'static>> {
    let bytes: &[u8] = match status {
        AgentStatus::Available => include_bytes!("../../icons/tray-available.png"),
        AgentStatus::Busy => include_bytes!("../../icons/tray-busy.png"),
        AgentStatus::DoNotDisturb => include_bytes!("../../icons/tray-dnd.png"),
    };
    tauri::image::Image::from_bytes(bytes).ok()
}

fn status_key(s: AgentStatus) -> &'static str {
    match s {
        AgentStatus::Available => "status:available",
        AgentStatus::Busy => "status:busy",
        AgentStatus::DoNotDisturb => "status:dnd",
    }
}

fn tray_menu(app: &AppHandle, status: AgentStatus, lang: Lang) -> tauri::Result<Menu<tauri::Wry>> {
    let menu = Menu::new(app)?;
    for s in AgentStatus::ALL {
        menu.append(&CheckMenuItem::with_id(
            app,
            status_key(s),
            s.label().get(lang),
            true,
            s == status,
            None::<&str>,
        )?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(
        app,
        "show",
        t(lang, "Show CallHelper", "Показать CallHelper"),
        true,
        None::<&str>,
    )?)?;
    menu.append(&MenuItem::with_id(
        app,
        "quit",
        t(lang, "Quit", "Выйти"),
        true,
        None::<&str>,
    )?)?;
    Ok(menu)
}

/// Put the status icon in the tray.
pub fn install_tray(app: &AppHandle, status: AgentStatus, lang: Lang) {
    let result = (|| -> tauri::Result<()> {
        let mut b = TrayIconBuilder::with_id(TRAY)
            .menu(&tray_menu(app, status, lang)?)
            .tooltip(format!("CallHelper — {}", status.label().get(lang)))
            .on_menu_event(|app, event| {
                let id = event.id().as_ref();
                let ws = app.state::<Desk>().ws();
                let set = |s| {
                    if let Err(e) = ws.set_status(s) {
                        log::warn!("desktop: status not changed ({})", e.code);
                    }
                };
                match id {
                    "status:available" => set(AgentStatus::Available),
                    "status:busy" => set(AgentStatus::Busy),
                    "status:dnd" => set(AgentStatus::DoNotDisturb),
                    "show" => show_main(app),
                    "quit" => app.exit(0),
                    _ => {}
                }
            });
        if let Some(icon) = status_icon(status) {
            b = b.icon(icon);
        }
        b.build(app)?;
        Ok(())
    })();
    if let Err(e) = result {
        log::warn!("desktop: no tray icon: {e}");
    }
}

/// Show a new status (and language) in the tray.
pub fn refresh_tray(app: &AppHandle, status: AgentStatus, lang: Lang) {
    let Some(tray) = app.tray_by_id(TRAY) else {
        return;
    };
    if let Ok(menu) = tray_menu(app, status, lang) {
        let _ = tray.set_menu(Some(menu));
    }
    let _ = tray.set_icon(status_icon(status));
    let _ = tray.set_tooltip(Some(format!("CallHelper — {}", status.label().get(lang))));
}

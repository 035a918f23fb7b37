//! The engine thread: owns the liblinphone core, turns the crank, carries out commands,
//! and turns what the callbacks saw into our events through the pure models.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::ptr;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use linphone_sys as sys;

use super::callbacks::{self, CallSnapshot, Raw, Sink};
use super::classify;
use super::ffi::{self, OwnedAddress, b, cdir, cpath, cstr};
use super::soundcheck::{Active as SoundCheckRun, Progress as SoundCheckProgress};
use super::{
    AnswerOptions, AudioIo, CallOptions, Command, Decline, PhoneConfig, Port, Ports, Reply, Request,
};
use crate::account::{
    Account, RegistrationClock, RegistrationFailure, RegistrationState, Transport,
};
use crate::cadence::{self, Activity};
use crate::call::{CallId, CallLeg, CallSignal, CallState, Direction};
use crate::devices::{AudioDevice, DeviceRole, DeviceSelector, DeviceSwitch};
use crate::dtmf::{DtmfMethod, DtmfQueue, parse_digits};
use crate::error::{PhoneError, StartError};
use crate::event::{CallSummary, Event, TransferProgress, Warning};
use crate::network::{NetworkChange, NetworkWatch};
use crate::quality::{
    Codec, Expect, MediaCounters, MediaWatch, Quality, QualityTrack, estimate_mos,
};
use crate::redact::Address;
use crate::soundcheck::{SoundCheck, SoundCheckEnd, SoundCheckKind};

/// liblinphone's factory is one per process and its folder settings are read while a
/// core is created and started: phones start one at a time.
static FACTORY: Mutex<()> = Mutex::new(());

/// belle-sip, under liblinphone, keeps process-wide parser state (its SDP parser is one
/// per process) and is not safe to enter from two threads at once: two phones in one
/// process (the app and its demo line, the tests' parties) parsing SDP together corrupted
/// the heap (a crash in `belle_sdp_base_description_add_attribute` in about one run of
/// the transfer tests in five). Every phone holds this while it is inside liblinphone's
/// signalling: starting, a command, `iterate`, shutting down. Media threads do not take
/// it.
static SIGNALLING: Mutex<()> = Mutex::new(());

fn signalling() -> std::sync::MutexGuard<'static, ()> {
    SIGNALLING.lock().unwrap_or_else(|e| e.into_inner())
}

const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const NETWORK_EVERY: Duration = Duration::from_secs(3);
const DEVICES_EVERY: Duration = Duration::from_secs(5);
/// How long after the answer we keep the fast tick while waiting for the first packet.
const MEDIA_SETTLE: Duration = Duration::from_secs(5);

pub(super) fn run(
    config: PhoneConfig,
    requests: Receiver<Request>,
    events: Sender<Event>,
    ready: Sender<Result<Ports, StartError>>,
) {
    let started = {
        let _inside = signalling();
        Engine::start(&config, events)
    };
    let mut engine = match started {
        Ok(e) => e,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(engine.ports()));
    loop {
        let wait = engine.next_tick(Instant::now());
        match requests.recv_timeout(wait) {
            Ok(Request::Command(command, reply)) => {
                let result = {
                    let _inside = signalling();
                    engine.command(*command)
                };
                let _ = reply.send(result);
            }
            Ok(Request::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let _inside = signalling();
        engine.tick(Instant::now());
    }
    let _inside = signalling();
    engine.shutdown();
}

struct CallEntry {
    ptr: *mut sys::LinphoneCall,
    leg: CallLeg,
    remote: Address,
    local_end: bool,
    muted: bool,
    record: Option<PathBuf>,
    recording: bool,
    recorded: bool,
    codec: Option<Codec>,
    watch: MediaWatch,
    quality: QualityTrack,
    last_sample: Option<Instant>,
    last_report: Option<Instant>,
    media_flowing: bool,
    stalled_ever: bool,
}

struct AccountEntry {
    name: String,
    ptr: *mut sys::LinphoneAccount,
    clock: RegistrationClock,
}

struct Engine {
    core: *mut sys::LinphoneCore,
    sink: Box<Sink>,
    events: Sender<Event>,
    calls: BTreeMap<CallId, CallEntry>,
    accounts: Vec<AccountEntry>,
    dtmf: DtmfQueue,
    default_dtmf: DtmfMethod,
    active_dtmf: Option<DtmfMethod>,
    devices: Option<DeviceSelector>,
    device_list: Vec<AudioDevice>,
    warned_no_device: bool,
    network: NetworkWatch,
    next_network_check: Instant,
    next_device_check: Instant,
    last_activity: Option<Instant>,
    media_grace: Duration,
    quality_every: Duration,
    register_timeout: Duration,
    fixed_tick: Option<Duration>,
    /// The phone's folder (scratch files of the sound check).
    folder: PathBuf,
    /// The microphone or speaker test under way.
    sound_check: Option<SoundCheckRun>,
}

fn port_value(p: Port) -> i32 {
    match p {
        Port::Off => 0,
        Port::Random => -1,
        Port::Fixed(n) => i32::from(n),
    }
}

fn used_port(v: i32) -> Option<u16> {
    u16::try_from(v).ok().filter(|p| *p != 0)
}

/// # Safety
/// `cfg` is a valid liblinphone config.
unsafe fn set_str(cfg: *mut sys::LinphoneConfig, section: &str, key: &str, value: &str) {
    let (s, k, v) = (cstr(section), cstr(key), cstr(value));
    // SAFETY: valid config, strings outlive the call.
    unsafe { sys::linphone_config_set_string(cfg, s.as_ptr(), k.as_ptr(), v.as_ptr()) };
}

/// # Safety
/// `cfg` is a valid liblinphone config.
unsafe fn set_int(cfg: *mut sys::LinphoneConfig, section: &str, key: &str, value: i32) {
    let (s, k) = (cstr(section), cstr(key));
    // SAFETY: valid config, strings outlive the call.
    unsafe { sys::linphone_config_set_int(cfg, s.as_ptr(), k.as_ptr(), value) };
}

impl Engine {
    fn start(cfg: &PhoneConfig, events: Sender<Event>) -> Result<Engine, StartError> {
        // liblinphone fails on relative folders (a relative $HOME made start return -2).
        let folder = cfg
            .folder
            .canonicalize()
            .map_err(|source| StartError::Folder {
                path: cfg.folder.clone(),
                source,
            })?;
        let sink = Box::new(Sink::default());
        let core = {
            let _only_one = FACTORY.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: the factory is only touched under the lock; every string outlives
            // the call using it; the sink outlives the core (both owned by the Engine).
            unsafe {
                let f = sys::linphone_factory_get();
                sys::linphone_factory_set_config_dir(f, cdir(&folder).as_ptr());
                sys::linphone_factory_set_data_dir(f, cdir(&folder).as_ptr());
                sys::linphone_factory_set_download_dir(f, cdir(&folder.join("downloads")).as_ptr());
                // The system's plugins less the video ones (no Qt and OpenGL in a phone
                // without video); mediastreamer2's default folder when that fails.
                if let Some(dir) = super::plugins::audio_plugins(&folder) {
                    sys::linphone_factory_set_msplugins_dir(f, cdir(&dir).as_ptr());
                }
                // No configuration file: liblinphone would persist accounts and passwords
                // in it and load them again next time. Our own configuration is the truth;
                // liblinphone's lives in memory for the life of the core.
                let core = sys::linphone_factory_create_core_3(
                    f,
                    ptr::null(),
                    ptr::null(),
                    ptr::null_mut(),
                );
                if core.is_null() {
                    return Err(StartError::Engine(-1));
                }
                let lc = sys::linphone_core_get_config(core);
                // No SQLite databases: the product keeps calls in its own store, and
                // liblinphone's SQLite calls would bind to whatever SQLite the program
                // exports (the store's bundled SQLCipher) and crash. "null" is
                // liblinphone's value for "no database".
                set_str(lc, "storage", "uri", "null");
                set_str(lc, "storage", "call_logs_db_uri", "null");
                set_str(lc, "storage", "zrtp_secrets_db_uri", "null");
                set_int(lc, "sip", "sip_port", port_value(cfg.listen.udp));
                set_int(lc, "sip", "sip_tcp_port", port_value(cfg.listen.tcp));
                set_int(lc, "sip", "sip_tls_port", port_value(cfg.listen.tls));
                set_int(lc, "sip", "use_ipv6", 0);
                // A registration refused for a wrong password is not retried in a loop.
                set_int(lc, "sip", "refresher_retry_after", 60_000);
                if let Some(ip) = cfg.bind {
                    set_str(lc, "rtp", "bind_address", &ip.to_string());
                    set_str(lc, "sip", "bind_address", &ip.to_string());
                    set_int(lc, "sip", "guess_hostname", 0);
                }
                set_int(lc, "video", "capture", 0);
                set_int(lc, "video", "display", 0);
                sys::linphone_core_set_user_data(
                    core,
                    (&*sink as *const Sink).cast_mut().cast::<c_void>(),
                );
                callbacks::install(core);
                let status = sys::linphone_core_start(core);
                if status != 0 {
                    sys::linphone_core_unref(core);
                    return Err(StartError::Engine(status));
                }
                core
            }
        };
        let now = Instant::now();
        let mut engine = Engine {
            core,
            sink,
            events,
            calls: BTreeMap::new(),
            accounts: Vec::new(),
            dtmf: DtmfQueue::default(),
            default_dtmf: cfg.dtmf,
            active_dtmf: None,
            devices: None,
            device_list: Vec::new(),
            warned_no_device: false,
            network: NetworkWatch::default(),
            next_network_check: now,
            next_device_check: now + DEVICES_EVERY,
            last_activity: Some(now),
            media_grace: cfg.media_grace,
            quality_every: cfg.quality_every,
            register_timeout: cfg.register_timeout,
            fixed_tick: cfg.fixed_tick,
            folder: folder.clone(),
            sound_check: None,
        };
        engine.configure(cfg)?;
        engine.sink.media_clock.borrow_mut().prepare();
        for account in &cfg.accounts {
            engine.add_account(account.clone())?;
        }
        engine.drain(Instant::now());
        Ok(engine)
    }

    fn configure(&mut self, cfg: &PhoneConfig) -> Result<(), StartError> {
        let core = self.core;
        // SAFETY: our core, on its thread; strings outlive the calls.
        unsafe {
            let ua = cstr(&cfg.user_agent);
            let version = cstr(env!("CARGO_PKG_VERSION"));
            sys::linphone_core_set_user_agent(core, ua.as_ptr(), version.as_ptr());
            sys::linphone_core_enable_ipv6(core, 0);
            if let Some(ms) = cfg.ptime {
                sys::linphone_core_set_upload_ptime(core, i32::from(ms));
            }
            if let Some(ip) = cfg.bind {
                // Without an account, calls go out as this identity; its host must be the
                // bound address, not whatever liblinphone guesses (an IPv6 address here).
                let contact = cstr(&format!("sip:callhelper@{ip}"));
                sys::linphone_core_set_guess_hostname(core, 0);
                sys::linphone_core_set_primary_contact(core, contact.as_ptr());
            }
            sys::linphone_core_enable_video_capture(core, 0);
            sys::linphone_core_enable_video_display(core, 0);
            let policy =
                sys::linphone_factory_create_video_activation_policy(sys::linphone_factory_get());
            sys::linphone_video_activation_policy_set_automatically_initiate(policy, 0);
            sys::linphone_video_activation_policy_set_automatically_accept(policy, 0);
            sys::linphone_core_set_video_activation_policy(core, policy);
            sys::linphone_video_activation_policy_unref(policy);
            // No ZRTP cache (another SQLite database, see above).
            sys::linphone_core_set_zrtp_secrets_file(core, ptr::null());
            match cfg.rtp_ports {
                Some((lo, hi)) => {
                    sys::linphone_core_set_audio_port_range(core, i32::from(lo), i32::from(hi))
                }
                None => sys::linphone_core_set_audio_port(core, -1),
            }

            if set_transports(
                core,
                [cfg.listen.udp, cfg.listen.tcp, cfg.listen.tls].map(port_value),
            ) != 0
            {
                return Err(StartError::Listen);
            }
            let used = self.ports();
            // liblinphone builds Contact headers from the configured port: a "random" -1
            // ends up as `sip:user@:-1`. Pin the ports the system picked.
            let pinned = [used.udp, used.tcp, used.tls].map(|p| p.map_or(0, i32::from));
            if set_transports(core, pinned) != 0 {
                return Err(StartError::Listen);
            }
            let wanted = [cfg.listen.udp, cfg.listen.tcp, cfg.listen.tls];
            let got = [used.udp, used.tcp, used.tls];
            for (w, g) in wanted.iter().zip(got) {
                match (w, g) {
                    (Port::Off, _) => {}
                    (Port::Fixed(p), Some(q)) if *p == q => {}
                    (Port::Random, Some(_)) => {}
                    _ => return Err(StartError::Listen),
                }
            }

            if let Some(ca) = &cfg.tls.root_ca {
                if !ca.is_file() {
                    return Err(StartError::MissingFile(ca.clone()));
                }
                sys::linphone_core_set_root_ca(core, cpath(ca).as_ptr());
            }
            sys::linphone_core_verify_server_certificates(core, b(cfg.tls.verify));
            self.set_dtmf_method(cfg.dtmf);

            match &cfg.audio {
                AudioIo::Files { play, speaker } => {
                    // No acoustic path between files: echo cancellation would only
                    // distort the test signals.
                    sys::linphone_core_enable_echo_cancellation(core, 0);
                    sys::linphone_core_set_use_files(core, 1);
                    let play = play.as_deref().map(cpath);
                    let speaker = speaker.as_deref().map(cpath);
                    sys::linphone_core_set_play_file(
                        core,
                        play.as_ref().map_or(ptr::null(), |p| p.as_ptr()),
                    );
                    sys::linphone_core_set_record_file(
                        core,
                        speaker.as_ref().map_or(ptr::null(), |p| p.as_ptr()),
                    );
                }
                AudioIo::Devices(prefs) => {
                    sys::linphone_core_set_use_files(core, 0);
                    sys::linphone_core_enable_echo_cancellation(core, 1);
                    self.devices = Some(DeviceSelector::new(prefs.clone()));
                    self.refresh_devices();
                }
            }
            sys::linphone_core_set_network_reachable(core, 1);
        }
        Ok(())
    }

    fn ports(&self) -> Ports {
        // SAFETY: our core; the transports object is ours to release.
        unsafe {
            let t = sys::linphone_core_get_transports_used(self.core);
            if t.is_null() {
                return Ports::default();
            }
            let ports = Ports {
                udp: used_port(sys::linphone_transports_get_udp_port(t)),
                tcp: used_port(sys::linphone_transports_get_tcp_port(t)),
                tls: used_port(sys::linphone_transports_get_tls_port(t)),
            };
            sys::linphone_transports_unref(t);
            ports
        }
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn set_dtmf_method(&mut self, method: DtmfMethod) {
        if self.active_dtmf == Some(method) {
            return;
        }
        let info = method == DtmfMethod::SipInfo;
        // SAFETY: our core.
        unsafe {
            sys::linphone_core_set_use_info_for_dtmf(self.core, b(info));
            sys::linphone_core_set_use_rfc2833_for_dtmf(self.core, b(!info));
        }
        self.active_dtmf = Some(method);
    }

    // ----- the crank -------------------------------------------------------------------

    fn next_tick(&self, now: Instant) -> Duration {
        let tick = self.call_tick(now);
        match &self.sound_check {
            Some(c) => tick.min(c.next_look().saturating_duration_since(now)),
            None => tick,
        }
    }

    fn call_tick(&self, now: Instant) -> Duration {
        if let Some(t) = self.fixed_tick {
            return t;
        }
        let settling = self.calls.values().any(|c| match c.leg.state() {
            CallState::Idle | CallState::Dialing | CallState::EarlyMedia => true,
            CallState::Ringing => c.leg.direction() == Direction::Outgoing,
            CallState::Connected => !c.media_flowing && c.leg.talk_time(now) < MEDIA_SETTLE,
            _ => false,
        });
        let busy = settling || !self.dtmf.is_empty();
        cadence::next_tick(
            now,
            Activity {
                call_settling: busy,
                last_activity: self.last_activity,
            },
        )
    }

    fn tick(&mut self, now: Instant) {
        // SAFETY: our core, on its thread.
        unsafe { sys::linphone_core_iterate(self.core) };
        // The audio graphs that iteration started are complete: let them run.
        self.sink.media_clock.borrow_mut().release_all();
        self.drain(now);
        self.send_due_dtmf(now);
        self.sample_calls(now);
        self.check_registrations(now);
        self.look_at_sound_check(now);
        if now >= self.next_network_check {
            self.next_network_check = now + NETWORK_EVERY;
            if let Some(change) = self
                .network
                .observe(now, SystemTime::now(), &local_addresses())
            {
                self.network_changed(change);
            }
        }
        if now >= self.next_device_check {
            self.next_device_check = now + DEVICES_EVERY;
            if self.devices.is_some() && self.calls.is_empty() {
                // SAFETY: our core; reloading between calls picks up plugged devices.
                unsafe { sys::linphone_core_reload_sound_devices(self.core) };
                self.refresh_devices();
            }
        }
    }

    /// Handle everything the callbacks queued (they may queue more while we do).
    fn drain(&mut self, now: Instant) {
        loop {
            let batch = std::mem::take(&mut *self.sink.raw.borrow_mut());
            if batch.is_empty() {
                return;
            }
            self.last_activity = Some(now);
            for raw in batch {
                self.handle(raw, now);
            }
        }
    }

    fn handle(&mut self, raw: Raw, now: Instant) {
        match raw {
            Raw::Call(snap) => self.call_changed(snap, now),
            Raw::Registration {
                account,
                state,
                reason,
                sip_code,
            } => {
                let Some(a) = self.accounts.iter_mut().find(|a| a.ptr == account) else {
                    return;
                };
                let state = classify::registration(state, reason, sip_code);
                a.clock.observe(&state, now);
                let sip_code = sip_code.filter(|_| !matches!(state, RegistrationState::Progress));
                let account = a.name.clone();
                self.emit(Event::Registration {
                    account,
                    state,
                    sip_code,
                });
            }
            Raw::Dtmf { call, digit } => self.emit(Event::Dtmf { call, digit }),
            Raw::Transfer { call, state } => {
                let Some(progress) = classify::transfer(state) else {
                    return;
                };
                self.emit(Event::Transfer { call, progress });
                if progress == TransferProgress::Failed {
                    self.apply(call, CallSignal::TransferFailed, now);
                }
            }
            Raw::DevicesChanged => self.refresh_devices(),
        }
    }

    fn entry(
        &mut self,
        snap_id: CallId,
        ptr: *mut sys::LinphoneCall,
        dir: Direction,
        remote: Option<&str>,
        now: Instant,
    ) -> &mut CallEntry {
        let grace = self.media_grace;
        self.calls.entry(snap_id).or_insert_with(|| CallEntry {
            ptr,
            leg: CallLeg::new(snap_id, dir, now),
            remote: Address::new(remote.unwrap_or_default()),
            local_end: false,
            muted: false,
            record: None,
            recording: false,
            recorded: false,
            codec: None,
            watch: MediaWatch::new(grace),
            quality: QualityTrack::default(),
            last_sample: None,
            last_report: None,
            media_flowing: false,
            stalled_ever: false,
        })
    }

    fn call_changed(&mut self, snap: CallSnapshot, now: Instant) {
        let dir = if snap.incoming {
            Direction::Incoming
        } else {
            Direction::Outgoing
        };
        let is_new = !self.calls.contains_key(&snap.id);
        if is_new {
            // A call needs the sound devices: the test gives way.
            self.stop_sound_check(SoundCheckEnd::Stopped);
        }
        let entry = self.entry(snap.id, snap.ptr, dir, snap.remote.as_deref(), now);
        if let Some(c) = &snap.codec {
            entry.codec = Some(Codec::from_mime(c));
        }
        if entry.remote.as_str().is_empty() {
            if let Some(r) = &snap.remote {
                entry.remote = Address::new(r.clone());
            }
        }
        let remote = entry.remote.clone();
        if is_new {
            match dir {
                Direction::Incoming => self.emit(Event::Incoming {
                    call: snap.id,
                    from: remote,
                    to: Address::new(snap.to.clone().unwrap_or_default()),
                }),
                Direction::Outgoing => self.emit(Event::Outgoing {
                    call: snap.id,
                    to: remote,
                }),
            }
        }
        if snap.state == sys::LinphoneCallStateReleased {
            self.release(snap.id);
            return;
        }
        if snap.state == sys::LinphoneCallStateStreamsRunning {
            self.start_recording_if_asked(snap.id);
        }
        let local = self.calls.get(&snap.id).is_some_and(|c| c.local_end);
        let is_error = snap.state == sys::LinphoneCallStateError;
        let signal = classify::call_signal(snap.state, snap.remote_holds, || {
            classify::end_reason(snap.reason, snap.sip_code, local, is_error)
        });
        if let Some(signal) = signal {
            self.apply(snap.id, signal, now);
        }
    }

    fn apply(&mut self, id: CallId, signal: CallSignal, now: Instant) {
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        match entry.leg.apply(signal, now) {
            Ok(Some(t)) => {
                if let CallState::Ended { reason } = t.to {
                    // The last figures, while the streams still exist.
                    self.sample(id, now, true);
                    self.dtmf.forget(id);
                    self.emit(Event::CallState {
                        call: id,
                        state: t.to,
                    });
                    if let Some(e) = self.calls.get(&id) {
                        // The recorder has closed the file with the streams: put its
                        // header right before anyone reads it.
                        if let Some(path) = e.record.as_ref().filter(|_| e.recorded) {
                            if let Err(err) = crate::wav::repair_header(path) {
                                log::warn!(
                                    "{id}: the recording's header was left as it is: {}",
                                    err.kind()
                                );
                            }
                        }
                        let summary = CallSummary {
                            direction: e.leg.direction(),
                            remote: e.remote.clone(),
                            reason,
                            answered: e.leg.was_answered(),
                            ring_ms: e.leg.time_to_answer().map(|d| d.as_millis() as u64),
                            talk_ms: e.leg.talk_time(now).as_millis() as u64,
                            codec: e.codec,
                            quality: e.quality.summary(),
                            media_stalled: e.stalled_ever,
                            recording: e.record.clone().filter(|_| e.recorded),
                        };
                        self.emit(Event::CallEnded { call: id, summary });
                    }
                } else {
                    self.emit(Event::CallState {
                        call: id,
                        state: t.to,
                    });
                }
            }
            Ok(None) => {}
            Err(e) => log::debug!("{id}: ignored: {e}"),
        }
    }

    fn release(&mut self, id: CallId) {
        if let Some(e) = self.calls.remove(&id) {
            // SAFETY: the reference taken when the call was first seen.
            unsafe {
                sys::linphone_call_set_user_data(e.ptr, ptr::null_mut());
                sys::linphone_call_unref(e.ptr);
            }
        }
    }

    fn start_recording_if_asked(&mut self, id: CallId) {
        let Some(e) = self.calls.get_mut(&id) else {
            return;
        };
        if e.recording {
            return;
        }
        let Some(path) = e.record.clone() else { return };
        // SAFETY: a live call we hold a reference to.
        unsafe { sys::linphone_call_start_recording(e.ptr) };
        e.recording = true;
        e.recorded = true;
        self.emit(Event::Recording {
            call: id,
            path,
            active: true,
        });
    }

    // ----- quality and the media watch -------------------------------------------------

    fn sample_calls(&mut self, now: Instant) {
        let due: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                matches!(
                    c.leg.state(),
                    CallState::Connected | CallState::OnHold(_) | CallState::Transferring
                )
            })
            .filter(|(_, c)| {
                c.last_sample
                    .is_none_or(|t| now.saturating_duration_since(t) >= SAMPLE_EVERY)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.sample(id, now, false);
        }
    }

    fn sample(&mut self, id: CallId, now: Instant, last: bool) {
        let quality_every = self.quality_every;
        let Some(e) = self.calls.get_mut(&id) else {
            return;
        };
        e.last_sample = Some(now);
        // SAFETY: a live call we hold a reference to; the stats copy is ours to release.
        let (counters, lost, jitter_s, rtt_s) = unsafe {
            let stats = sys::linphone_call_get_audio_stats(e.ptr);
            if stats.is_null() {
                return;
            }
            let rtp = sys::linphone_call_stats_get_rtp_stats(stats);
            let (counters, lost) = if rtp.is_null() {
                (MediaCounters::default(), 0)
            } else {
                let r = &*rtp;
                (
                    MediaCounters {
                        received: r.packet_recv,
                        sent: r.packet_sent,
                    },
                    r.cum_packet_loss.max(0) as u64,
                )
            };
            // Both come from RTCP; asking before the first report only logs a warning.
            let rtcp = !rtp.is_null() && (*rtp).sent_rtcp_packets > 0;
            let jitter = if rtcp {
                sys::linphone_call_stats_get_sender_interarrival_jitter(stats)
            } else {
                0.0
            };
            let rtt = if rtcp && (*rtp).recv_rtcp_packets > 0 {
                sys::linphone_call_stats_get_round_trip_delay(stats)
            } else {
                0.0
            };
            sys::linphone_call_stats_unref(stats);
            (counters, lost, jitter, rtt)
        };
        let state = e.leg.state();
        e.media_flowing |= counters.received > 0;
        let mut out = Vec::new();
        if !last {
            let connected = state == CallState::Connected;
            let expect = Expect {
                incoming: connected,
                outgoing: connected && !e.muted,
            };
            for alarm in e.watch.observe(now, counters, expect) {
                e.stalled_ever |= matches!(alarm, crate::quality::MediaAlarm::Stalled { .. });
                out.push(Event::Media { call: id, alarm });
            }
        }
        if state == CallState::Connected && counters.received > 0 {
            let expected = counters.received + lost;
            let loss_percent = (lost as f64 * 100.0 / expected as f64) as f32;
            let jitter_ms = (jitter_s.max(0.0) * 1000.0).min(10_000.0);
            let rtt_ms = (rtt_s > 0.0).then_some(rtt_s * 1000.0);
            let codec = e.codec.unwrap_or(Codec::Other);
            let q = Quality {
                jitter_ms,
                loss_percent,
                rtt_ms,
                mos: estimate_mos(rtt_ms, jitter_ms, loss_percent, codec),
            };
            e.quality.add(q);
            if !last
                && e.last_report
                    .is_none_or(|t| now.saturating_duration_since(t) >= quality_every)
            {
                e.last_report = Some(now);
                out.push(Event::Quality {
                    call: id,
                    quality: q,
                });
            }
        }
        for ev in out {
            self.emit(ev);
        }
    }

    // ----- commands --------------------------------------------------------------------

    fn command(&mut self, command: Command) -> Result<Reply, PhoneError> {
        let now = Instant::now();
        self.last_activity = Some(now);
        let result = self.carry_out(command, now);
        self.drain(now);
        result
    }

    fn live(&self, id: CallId) -> Result<&CallEntry, PhoneError> {
        self.calls
            .get(&id)
            .filter(|c| !c.leg.state().is_ended())
            .ok_or(PhoneError::NoSuchCall(id))
    }

    fn carry_out(&mut self, command: Command, now: Instant) -> Result<Reply, PhoneError> {
        match command {
            Command::AddAccount(a) => self.add_account(a).map(|_| Reply::Done),
            Command::RemoveAccount(name) => {
                let i = self.account_index(&name)?;
                let a = self.accounts.remove(i);
                // SAFETY: our core and our reference to the account.
                unsafe {
                    sys::linphone_core_remove_account(self.core, a.ptr);
                    sys::linphone_account_unref(a.ptr);
                }
                Ok(Reply::Done)
            }
            Command::Register(name) => {
                let i = self.account_index(&name)?;
                // SAFETY: a live account of our core.
                unsafe { sys::linphone_account_refresh_register(self.accounts[i].ptr) };
                Ok(Reply::Done)
            }
            Command::Call { to, options } => {
                self.place_call(to.as_str(), options, now).map(Reply::Call)
            }
            Command::Answer { call, options } => self.answer(call, options).map(|_| Reply::Done),
            Command::Decline { call, how } => {
                let e = self.ringing_incoming(call, "declining")?;
                let reason = match how {
                    Decline::Busy => sys::LinphoneReasonBusy,
                    Decline::Decline => sys::LinphoneReasonDeclined,
                };
                let p = e.ptr;
                self.calls.get_mut(&call).expect("checked").local_end = true;
                // SAFETY: a live call.
                status(
                    unsafe { sys::linphone_call_decline(p, reason) },
                    "decline the call",
                )
            }
            Command::HangUp(call) => {
                let p = self.live(call)?.ptr;
                self.calls.get_mut(&call).expect("checked").local_end = true;
                // SAFETY: a live call.
                status(unsafe { sys::linphone_call_terminate(p) }, "hang up")
            }
            Command::Hold(call) => self.in_state(
                call,
                "hold",
                |s| matches!(s, CallState::Connected | CallState::OnHold(_)),
                sys::linphone_call_pause,
            ),
            Command::Resume(call) => self.in_state(
                call,
                "resume",
                |s| matches!(s, CallState::OnHold(h) if h.local),
                sys::linphone_call_resume,
            ),
            Command::Mute { call, muted } => {
                let p = self.live(call)?.ptr;
                // SAFETY: a live call. liblinphone mutes the sound card's capture; a
                // played file (tests, the demo line) has no volume stage and stays audible.
                unsafe { sys::linphone_call_set_microphone_muted(p, b(muted)) };
                self.calls.get_mut(&call).expect("checked").muted = muted;
                Ok(Reply::Done)
            }
            Command::Dtmf {
                call,
                digits,
                method,
            } => {
                let e = self.live(call)?;
                if !matches!(e.leg.state(), CallState::Connected | CallState::EarlyMedia) {
                    return Err(PhoneError::WrongState {
                        what: "sending DTMF",
                        state: e.leg.state().name(),
                    });
                }
                let digits = parse_digits(&digits)?;
                self.dtmf
                    .push(call, &digits, method.unwrap_or(self.default_dtmf));
                self.send_due_dtmf(now);
                Ok(Reply::Done)
            }
            Command::Transfer { call, to } => {
                let p = self.live(call)?.ptr;
                let addr = self.interpret(to.as_str())?;
                // SAFETY: a live call and a valid address.
                let st = unsafe { sys::linphone_call_transfer_to(p, addr.0) };
                self.transfer_requested(call, st, now)
            }
            Command::TransferAttended { call, to } => {
                let p = self.live(call)?.ptr;
                let dest = self.live(to)?.ptr;
                // SAFETY: two live calls.
                let st = unsafe { sys::linphone_call_transfer_to_another(p, dest) };
                self.transfer_requested(call, st, now)
            }
            Command::StartRecording(call) => {
                let e = self.live(call)?;
                if e.record.is_none() {
                    return Err(PhoneError::WrongState {
                        what: "recording without a file",
                        state: e.leg.state().name(),
                    });
                }
                self.start_recording_if_asked(call);
                Ok(Reply::Done)
            }
            Command::StopRecording(call) => {
                let e = self
                    .calls
                    .get_mut(&call)
                    .ok_or(PhoneError::NoSuchCall(call))?;
                if e.recording {
                    // SAFETY: a live call.
                    unsafe { sys::linphone_call_stop_recording(e.ptr) };
                    e.recording = false;
                    let path = e.record.clone().unwrap_or_default();
                    self.emit(Event::Recording {
                        call,
                        path,
                        active: false,
                    });
                }
                Ok(Reply::Done)
            }
            Command::ListDevices => Ok(Reply::Devices(self.list_devices())),
            Command::SetDevicePreferences(prefs) => {
                let list = self.list_devices();
                let switches = match &mut self.devices {
                    Some(sel) => sel.set_preferences(prefs, &list),
                    None => Vec::new(),
                };
                self.apply_switches(switches);
                Ok(Reply::Done)
            }
            Command::NetworkChanged => {
                self.network_changed(NetworkChange::Requested);
                Ok(Reply::Done)
            }
            Command::StartSoundCheck(check) => self.start_sound_check(check, now),
            Command::StopSoundCheck => {
                self.stop_sound_check(SoundCheckEnd::Stopped);
                Ok(Reply::Done)
            }
        }
    }

    // ----- the microphone and speaker test ---------------------------------------------

    fn start_sound_check(&mut self, check: SoundCheck, now: Instant) -> Result<Reply, PhoneError> {
        self.stop_sound_check(SoundCheckEnd::Stopped);
        if !self.calls.is_empty() {
            return Err(PhoneError::WrongState {
                what: "testing the sound devices",
                state: "in a call",
            });
        }
        let role = match check.kind {
            SoundCheckKind::Microphone => DeviceRole::Capture,
            SoundCheckKind::Speaker => DeviceRole::Playback,
        };
        // The device asked for, else the one in use for the role, else the core's.
        let device = check.device.clone().or_else(|| {
            self.devices
                .as_ref()
                .and_then(|s| s.current(role).map(str::to_owned))
                .or_else(|| {
                    // SAFETY: our core; the returned string is borrowed for the copy.
                    unsafe {
                        ffi::string(match role {
                            DeviceRole::Capture => sys::linphone_core_get_capture_device(self.core),
                            _ => sys::linphone_core_get_playback_device(self.core),
                        })
                    }
                })
        });
        // SAFETY: our core, started, on its thread.
        let run = unsafe { SoundCheckRun::start(self.core, &self.folder, &check, device, now)? };
        self.emit(Event::SoundCheck {
            kind: run.kind,
            device: run.device.clone(),
            running: true,
            end: None,
        });
        self.sound_check = Some(run);
        Ok(Reply::Done)
    }

    fn stop_sound_check(&mut self, why: SoundCheckEnd) {
        if let Some(mut run) = self.sound_check.take() {
            run.stop();
            self.emit(Event::SoundCheck {
                kind: run.kind,
                device: run.device.clone(),
                running: false,
                end: Some(why),
            });
        }
    }

    fn look_at_sound_check(&mut self, now: Instant) {
        let Some(run) = &mut self.sound_check else {
            return;
        };
        match run.look(now) {
            SoundCheckProgress::Running(Some(level)) => self.emit(Event::SoundLevel { level }),
            SoundCheckProgress::Running(None) => {}
            SoundCheckProgress::Ended(why) => self.stop_sound_check(why),
        }
    }

    fn transfer_requested(
        &mut self,
        call: CallId,
        st: sys::LinphoneStatus,
        now: Instant,
    ) -> Result<Reply, PhoneError> {
        status(st, "transfer the call")?;
        self.emit(Event::Transfer {
            call,
            progress: TransferProgress::Requested,
        });
        self.apply(call, CallSignal::TransferStarted, now);
        Ok(Reply::Done)
    }

    /// Run `op` on a call whose state `allowed` accepts.
    fn in_state(
        &self,
        call: CallId,
        what: &'static str,
        allowed: impl Fn(CallState) -> bool,
        op: unsafe extern "C" fn(*mut sys::LinphoneCall) -> sys::LinphoneStatus,
    ) -> Result<Reply, PhoneError> {
        let e = self.live(call)?;
        if !allowed(e.leg.state()) {
            return Err(PhoneError::WrongState {
                what,
                state: e.leg.state().name(),
            });
        }
        // SAFETY: a live call we hold a reference to.
        status(unsafe { op(e.ptr) }, what)
    }

    fn check_registrations(&mut self, now: Instant) {
        let limit = self.register_timeout;
        let late: Vec<String> = self
            .accounts
            .iter_mut()
            .filter_map(|a| a.clock.overdue(now, limit).then(|| a.name.clone()))
            .collect();
        for account in late {
            let state = RegistrationState::Failed {
                failure: RegistrationFailure::Timeout,
            };
            self.emit(Event::Registration {
                account,
                state,
                sip_code: None,
            });
        }
    }

    fn account_index(&self, name: &str) -> Result<usize, PhoneError> {
        self.accounts
            .iter()
            .position(|a| a.name == name)
            .ok_or_else(|| PhoneError::NoSuchAccount(name.into()))
    }

    fn ringing_incoming(&self, call: CallId, what: &'static str) -> Result<&CallEntry, PhoneError> {
        let e = self.live(call)?;
        if e.leg.direction() != Direction::Incoming
            || !matches!(e.leg.state(), CallState::Ringing | CallState::EarlyMedia)
        {
            return Err(PhoneError::WrongState {
                what,
                state: e.leg.state().name(),
            });
        }
        Ok(e)
    }

    /// A dialled string as an address: a full SIP URI, or a user/number at the default
    /// account's domain.
    fn interpret(&self, to: &str) -> Result<OwnedAddress, PhoneError> {
        let to = to.trim();
        if to.is_empty() {
            return Err(PhoneError::InvalidAddress);
        }
        let c = cstr(to);
        // SAFETY: our core; the returned address is ours.
        let p = unsafe { sys::linphone_core_interpret_url(self.core, c.as_ptr()) };
        if p.is_null() {
            Err(PhoneError::InvalidAddress)
        } else {
            Ok(OwnedAddress(p))
        }
    }

    fn place_call(
        &mut self,
        to: &str,
        options: CallOptions,
        now: Instant,
    ) -> Result<CallId, PhoneError> {
        self.stop_sound_check(SoundCheckEnd::Stopped);
        if let Some(name) = &options.account {
            let i = self.account_index(name)?;
            // SAFETY: a live account of our core.
            unsafe { sys::linphone_core_set_default_account(self.core, self.accounts[i].ptr) };
        }
        let addr = self.interpret(to)?;
        // SAFETY: our core; params are ours to release; the call is borrowed until the
        // sink takes its reference.
        let (call, id) = unsafe {
            let params = sys::linphone_core_create_call_params(self.core, ptr::null_mut());
            if params.is_null() {
                return Err(PhoneError::Refused("place the call"));
            }
            if let Some(r) = &options.record {
                sys::linphone_call_params_set_record_file(params, cpath(r).as_ptr());
            }
            let call = sys::linphone_core_invite_address_with_params(self.core, addr.0, params);
            sys::linphone_call_params_unref(params);
            if call.is_null() {
                return Err(PhoneError::Refused("place the call"));
            }
            (call, self.sink.call_id(call))
        };
        let remote = addr_text(&addr);
        let e = self.entry(id, call, Direction::Outgoing, remote.as_deref(), now);
        e.record = options.record;
        let to = e.remote.clone();
        self.emit(Event::Outgoing { call: id, to });
        Ok(id)
    }

    fn answer(&mut self, call: CallId, options: AnswerOptions) -> Result<(), PhoneError> {
        let p = self.ringing_incoming(call, "answering")?.ptr;
        // SAFETY: our core and a live call; params are ours to release.
        unsafe {
            let params = sys::linphone_core_create_call_params(self.core, p);
            if params.is_null() {
                return Err(PhoneError::Refused("answer the call"));
            }
            if let Some(r) = &options.record {
                sys::linphone_call_params_set_record_file(params, cpath(r).as_ptr());
            }
            let st = sys::linphone_call_accept_with_params(p, params);
            // The audio graph accepting started is complete: let it run.
            self.sink.media_clock.borrow_mut().release_all();
            sys::linphone_call_params_unref(params);
            status(st, "answer the call")?;
        }
        self.calls.get_mut(&call).expect("checked").record = options.record;
        Ok(())
    }

    fn send_due_dtmf(&mut self, now: Instant) {
        while let Some((call, digit, method)) = self.dtmf.due(now) {
            let Some(e) = self.calls.get(&call) else {
                continue;
            };
            let p = e.ptr;
            self.set_dtmf_method(method);
            // SAFETY: a live call.
            let st = unsafe { sys::linphone_call_send_dtmf(p, digit as u8 as std::ffi::c_char) };
            if st != 0 {
                log::warn!("{call}: DTMF {digit:?} refused by the engine");
            }
            self.last_activity = Some(now);
            return;
        }
    }

    fn add_account(&mut self, a: Account) -> Result<(), PhoneError> {
        if self.accounts.iter().any(|x| x.name == a.name) {
            return Err(PhoneError::DuplicateAccount(a.name));
        }
        let invalid = |what| PhoneError::InvalidAccount {
            name: a.name.clone(),
            what,
        };
        if a.username.trim().is_empty() {
            return Err(invalid("the user name is empty"));
        }
        if a.domain.trim().is_empty() {
            return Err(invalid("the domain is empty"));
        }
        self.ensure_listening(a.transport)
            .map_err(|_| invalid("cannot open a SIP socket for its transport"))?;
        let identity = OwnedAddress::parse(&a.identity())
            .ok_or_else(|| invalid("the identity is not a valid SIP address"))?;
        let server = OwnedAddress::parse(&a.server_uri())
            .ok_or_else(|| invalid("the registrar is not a valid SIP address"))?;
        // SAFETY: our core; every object created here is released or handed to the core.
        unsafe {
            let params = sys::linphone_core_create_account_params(self.core);
            sys::linphone_account_params_set_identity_address(params, identity.0);
            sys::linphone_account_params_set_server_address(params, server.0);
            sys::linphone_account_params_set_outbound_proxy_enabled(params, 1);
            sys::linphone_account_params_set_expires(params, a.expires.min(i32::MAX as u32) as i32);
            sys::linphone_account_params_set_register_enabled(params, b(a.register));
            let account = sys::linphone_core_create_account(self.core, params);
            sys::linphone_account_params_unref(params);
            if account.is_null() {
                return Err(invalid("the SIP engine refused its settings"));
            }
            let user = cstr(&a.username);
            let userid = a.auth_username.as_deref().map(cstr);
            let pass = cstr(a.password.expose());
            let realm = a.realm.as_deref().map(cstr);
            let domain = cstr(&a.domain);
            let info = sys::linphone_factory_create_auth_info_2(
                sys::linphone_factory_get(),
                user.as_ptr(),
                userid.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
                pass.as_ptr(),
                ptr::null(),
                realm.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
                domain.as_ptr(),
                ptr::null(),
            );
            sys::linphone_core_add_auth_info(self.core, info);
            sys::linphone_auth_info_unref(info);
            self.accounts.push(AccountEntry {
                name: a.name.clone(),
                ptr: account,
                clock: RegistrationClock::default(),
            });
            if sys::linphone_core_add_account(self.core, account) != 0 {
                self.accounts.pop();
                sys::linphone_account_unref(account);
                return Err(invalid("the SIP engine refused its settings"));
            }
            if self.accounts.len() == 1 {
                sys::linphone_core_set_default_account(self.core, account);
            }
        }
        Ok(())
    }

    /// liblinphone needs a listening point of a transport to connect out over it: open
    /// one on a random port if the phone was started without it.
    fn ensure_listening(&mut self, transport: Transport) -> Result<(), PhoneError> {
        let p = self.ports();
        let mut ports = [p.udp, p.tcp, p.tls].map(|p| p.map_or(0, i32::from));
        let slot = match transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
        };
        if ports[slot] != 0 {
            return Ok(());
        }
        ports[slot] = -1;
        // SAFETY: our core.
        if unsafe { set_transports(self.core, ports) } != 0 {
            return Err(PhoneError::Refused("open a SIP socket"));
        }
        let p = self.ports();
        // SAFETY: our core; pin the picked port (see `configure`).
        if unsafe {
            set_transports(
                self.core,
                [p.udp, p.tcp, p.tls].map(|p| p.map_or(0, i32::from)),
            )
        } != 0
        {
            return Err(PhoneError::Refused("open a SIP socket"));
        }
        Ok(())
    }

    // ----- devices and network ---------------------------------------------------------

    fn list_devices(&self) -> Vec<AudioDevice> {
        // SAFETY: our core; the list and its references are ours to release.
        unsafe {
            let list = sys::linphone_core_get_extended_audio_devices(self.core);
            let mut out: Vec<AudioDevice> = Vec::new();
            for item in ffi::list_items(list) {
                let d = item.cast::<sys::LinphoneAudioDevice>();
                let device = AudioDevice {
                    id: ffi::string(sys::linphone_audio_device_get_id(d)).unwrap_or_default(),
                    name: ffi::string(sys::linphone_audio_device_get_device_name(d))
                        .unwrap_or_default(),
                    driver: ffi::string(sys::linphone_audio_device_get_driver_name(d))
                        .unwrap_or_default(),
                    can_capture: sys::linphone_audio_device_has_capability(
                        d,
                        sys::LinphoneAudioDeviceCapabilityRecord,
                    ) != 0,
                    can_play: sys::linphone_audio_device_has_capability(
                        d,
                        sys::LinphoneAudioDeviceCapabilityPlay,
                    ) != 0,
                };
                if !out.iter().any(|x| x.id == device.id) {
                    out.push(device);
                }
            }
            sys::bctbx_list_free_with_data(list, Some(unref_device));
            out
        }
    }

    fn refresh_devices(&mut self) {
        if self.devices.is_none() {
            return;
        }
        let list = self.list_devices();
        let changed = list != self.device_list;
        self.device_list = list;
        if !changed
            && self
                .devices
                .as_ref()
                .is_some_and(|s| s.current(DeviceRole::Playback).is_some())
        {
            return;
        }
        let switches = self
            .devices
            .as_mut()
            .map(|s| s.devices_changed(&self.device_list))
            .unwrap_or_default();
        self.apply_switches(switches);
    }

    fn apply_switches(&mut self, switches: Vec<DeviceSwitch>) {
        for s in switches {
            if let Some(id) = &s.to {
                let c = cstr(id);
                // SAFETY: our core.
                let st = unsafe {
                    match s.role {
                        DeviceRole::Capture => {
                            sys::linphone_core_set_capture_device(self.core, c.as_ptr())
                        }
                        DeviceRole::Playback => {
                            sys::linphone_core_set_playback_device(self.core, c.as_ptr())
                        }
                        DeviceRole::Ringer => {
                            sys::linphone_core_set_ringer_device(self.core, c.as_ptr())
                        }
                    }
                };
                if st != 0 {
                    self.emit(Event::Warning {
                        warning: Warning::DeviceRefused { device: id.clone() },
                    });
                } else if !self.calls.is_empty() && s.role != DeviceRole::Ringer {
                    self.switch_in_call(s.role, id);
                }
            }
            self.emit(Event::Device(s));
        }
        let Some(sel) = &self.devices else { return };
        let missing = sel.current(DeviceRole::Capture).is_none()
            || sel.current(DeviceRole::Playback).is_none();
        if missing && !self.warned_no_device {
            self.emit(Event::Warning {
                warning: Warning::NoAudioDevice,
            });
        }
        self.warned_no_device = missing;
    }

    /// Move the audio of the calls under way to another device (the settings above only
    /// apply to the next call).
    fn switch_in_call(&self, role: DeviceRole, id: &str) {
        // SAFETY: our core; the list and its references are released here.
        unsafe {
            let list = sys::linphone_core_get_extended_audio_devices(self.core);
            let found = ffi::list_items(list)
                .into_iter()
                .map(|d| d.cast::<sys::LinphoneAudioDevice>())
                .find(|d| {
                    ffi::string(sys::linphone_audio_device_get_id(*d)).as_deref() == Some(id)
                });
            if let Some(d) = found {
                match role {
                    DeviceRole::Capture => sys::linphone_core_set_input_audio_device(self.core, d),
                    _ => sys::linphone_core_set_output_audio_device(self.core, d),
                }
            }
            sys::bctbx_list_free_with_data(list, Some(unref_device));
        }
    }

    fn network_changed(&mut self, change: NetworkChange) {
        // SAFETY: our core.
        unsafe {
            if self.calls.is_empty() {
                // Re-creates the transports, then re-registers every account.
                sys::linphone_core_set_network_reachable(self.core, 0);
                sys::linphone_core_set_network_reachable(self.core, 1);
            } else {
                // Keep the calls' transports; just refresh the registrations.
                sys::linphone_core_refresh_registers(self.core);
            }
        }
        self.emit(Event::Network { change });
    }

    // ----- the end ---------------------------------------------------------------------

    fn shutdown(mut self) {
        self.stop_sound_check(SoundCheckEnd::Stopped);
        // SAFETY: our core.
        unsafe { sys::linphone_core_terminate_all_calls(self.core) };
        let deadline = Instant::now() + Duration::from_millis(500);
        while !self.calls.is_empty() && Instant::now() < deadline {
            std::thread::sleep(cadence::FAST);
            self.tick(Instant::now());
        }
        // Drop stops the core (which unregisters) and releases everything.
    }
}

/// # Safety
/// `core` is a valid core on its thread.
unsafe fn set_transports(
    core: *mut sys::LinphoneCore,
    [udp, tcp, tls]: [i32; 3],
) -> sys::LinphoneStatus {
    // SAFETY: our core; the transports object is released here.
    unsafe {
        let t = sys::linphone_factory_create_transports(sys::linphone_factory_get());
        sys::linphone_transports_set_udp_port(t, udp);
        sys::linphone_transports_set_tcp_port(t, tcp);
        sys::linphone_transports_set_tls_port(t, tls);
        let status = sys::linphone_core_set_transports(core, t);
        sys::linphone_transports_unref(t);
        status
    }
}

fn status(st: sys::LinphoneStatus, what: &'static str) -> Result<Reply, PhoneError> {
    if st == 0 {
        Ok(Reply::Done)
    } else {
        Err(PhoneError::Refused(what))
    }
}

fn addr_text(a: &OwnedAddress) -> Option<String> {
    // SAFETY: a valid address.
    unsafe { ffi::address_text(a.0) }
}

unsafe extern "C" fn unref_device(p: *mut c_void) {
    // SAFETY: called by bctbx_list_free_with_data on each device reference of the list.
    unsafe { sys::linphone_audio_device_unref(p.cast()) };
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The test's recorder or player goes before the core it belongs to.
        drop(self.sound_check.take());
        // SAFETY: our core and the references we hold; the sink is still alive here
        // because fields drop after this body.
        unsafe {
            sys::linphone_core_stop(self.core);
            for (_, e) in std::mem::take(&mut self.calls) {
                sys::linphone_call_unref(e.ptr);
            }
            for a in self.accounts.drain(..) {
                sys::linphone_account_unref(a.ptr);
            }
            sys::linphone_core_unref(self.core);
        }
        // Whatever the callbacks queued while stopping holds no references.
        self.sink.raw.borrow_mut().clear();
    }
}

/// The machine's interface addresses (up interfaces only).
fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = ptr::null_mut();
    // SAFETY: getifaddrs fills a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            let ifa = &*p;
            let up = ifa.ifa_flags & libc::IFF_UP as u32 != 0;
            if up && !ifa.ifa_addr.is_null() {
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*ifa.ifa_addr.cast::<libc::sockaddr_in6>();
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            p = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

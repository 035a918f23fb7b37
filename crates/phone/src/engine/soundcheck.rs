//! The microphone and speaker test on the engine thread.
//!
//! Microphone: liblinphone's `LinphoneRecorder` captures from the chosen sound device into
//! a scratch WAV file in the phone's folder; every [`LEVEL_EVERY`] the samples written
//! since the last look are measured ([`crate::level`]) and reported. The file is deleted
//! when the test stops. Speaker: a 440 Hz tone written to a scratch WAV is played with
//! liblinphone's local player on the chosen device.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::Instant;

use linphone_sys as sys;

use super::ffi::{self, cpath, cstr};
use crate::error::PhoneError;
use crate::level::{self, Level};
use crate::soundcheck::{LEVEL_EVERY, MAX_LIMIT, SoundCheck, SoundCheckEnd, SoundCheckKind};

/// The most bytes measured at one look (a second of 48 kHz stereo): a capture that got
/// far ahead is measured on its newest part.
const MAX_READ: u64 = 48_000 * 2 * 2;

/// The test tone: 440 Hz at −12 dBFS peak, 16 kHz mono.
const TONE_HZ: f64 = 440.0;
const TONE_AMPLITUDE: f64 = 0.25;
const TONE_RATE: u32 = 16_000;

/// How long the last level holds while the capture writes nothing new.
const HOLD: std::time::Duration = std::time::Duration::from_millis(600);

enum Running {
    Mic {
        recorder: *mut sys::LinphoneRecorder,
        file: PathBuf,
        data_at: Option<u64>,
        read_at: u64,
        next_level: Instant,
        /// The last level measured and when the capture last grew.
        last: Option<(Level, Instant)>,
    },
    Speaker {
        player: *mut sys::LinphonePlayer,
        file: PathBuf,
    },
}

/// A test under way.
pub(super) struct Active {
    pub(super) kind: SoundCheckKind,
    pub(super) device: Option<String>,
    until: Instant,
    running: Running,
}

/// What a look at a running test found.
pub(super) enum Progress {
    /// Still running; a level to report, if one is due.
    Running(Option<Level>),
    /// Over.
    Ended(SoundCheckEnd),
}

impl Active {
    /// Start a test on `core`. `device` is the sound device to use (already resolved).
    ///
    /// # Safety
    /// `core` is a valid, started core on this thread.
    pub(super) unsafe fn start(
        core: *mut sys::LinphoneCore,
        folder: &Path,
        check: &SoundCheck,
        device: Option<String>,
        now: Instant,
    ) -> Result<Active, PhoneError> {
        let until = now + check.limit.min(MAX_LIMIT);
        let running = match check.kind {
            // SAFETY: by the contract.
            SoundCheckKind::Microphone => unsafe {
                start_mic(core, folder, device.as_deref(), now)?
            },
            // SAFETY: by the contract.
            SoundCheckKind::Speaker => unsafe {
                start_speaker(core, folder, device.as_deref(), until - now)?
            },
        };
        Ok(Active {
            kind: check.kind,
            device,
            until,
            running,
        })
    }

    /// When the test next needs a look.
    pub(super) fn next_look(&self) -> Instant {
        match &self.running {
            Running::Mic { next_level, .. } => (*next_level).min(self.until),
            Running::Speaker { .. } => self.until,
        }
    }

    /// Look at the test: a level when one is due, or the end.
    pub(super) fn look(&mut self, now: Instant) -> Progress {
        if now >= self.until {
            return Progress::Ended(SoundCheckEnd::TimeLimit);
        }
        match &mut self.running {
            Running::Mic {
                recorder,
                file,
                data_at,
                read_at,
                next_level,
                last,
            } => {
                if now < *next_level {
                    return Progress::Running(None);
                }
                *next_level = now + LEVEL_EVERY;
                // SAFETY: our live recorder.
                let state = unsafe { sys::linphone_recorder_get_state(*recorder) };
                if state != sys::LinphoneRecorderRunning {
                    return Progress::Ended(SoundCheckEnd::Failed);
                }
                let level = match read_level(file, data_at, read_at) {
                    Some(l) => {
                        *last = Some((l, now));
                        l
                    }
                    // The recorder writes in blocks (a quarter of a second at 8 kHz):
                    // between two, the last level holds, unless the capture has stalled.
                    None => match *last {
                        Some((l, at)) if now.saturating_duration_since(at) < HOLD => l,
                        _ => Level::SILENT,
                    },
                };
                Progress::Running(Some(level))
            }
            Running::Speaker { player, .. } => {
                // SAFETY: our live player.
                let state = unsafe { sys::linphone_player_get_state(*player) };
                if state == sys::LinphonePlayerPlaying {
                    Progress::Running(None)
                } else {
                    // The tone is as long as the limit: it ended on its own.
                    Progress::Ended(SoundCheckEnd::TimeLimit)
                }
            }
        }
    }

    /// Stop and release everything (also on drop).
    pub(super) fn stop(&mut self) {
        // SAFETY: our live objects, released once (the pointers are nulled).
        unsafe {
            match &mut self.running {
                Running::Mic { recorder, file, .. } => {
                    if !recorder.is_null() {
                        sys::linphone_recorder_pause(*recorder);
                        sys::linphone_recorder_close(*recorder);
                        sys::linphone_recorder_unref(*recorder);
                        *recorder = ptr::null_mut();
                    }
                    let _ = std::fs::remove_file(file);
                }
                Running::Speaker { player, file } => {
                    if !player.is_null() {
                        sys::linphone_player_pause(*player);
                        sys::linphone_player_close(*player);
                        sys::linphone_player_unref(*player);
                        *player = ptr::null_mut();
                    }
                    let _ = std::fs::remove_file(file);
                }
            }
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The level of what the capture wrote since the last look; `None` when nothing new
/// was written.
fn read_level(file: &Path, data_at: &mut Option<u64>, read_at: &mut u64) -> Option<Level> {
    let mut f = File::open(file).ok()?;
    if data_at.is_none() {
        let mut head = vec![0u8; 512];
        let n = f.read(&mut head).unwrap_or(0);
        let at = match level::pcm_data_offset(&head[..n]) {
            Some(at) => at,
            // liblinphone's WAV recorder (16-bit PCM only) writes the samples from the
            // first byte and puts the header in when it closes the file.
            None if n >= 4 && &head[..4] != b"RIFF" => 0,
            None => return None,
        };
        *data_at = Some(at as u64);
        *read_at = at as u64;
    }
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len <= *read_at {
        return None;
    }
    // Keep sample alignment when skipping ahead.
    let from = (*read_at).max(len.saturating_sub(MAX_READ));
    let from = from - (from - data_at.unwrap_or(0)) % 2;
    let mut bytes = Vec::with_capacity((len - from) as usize);
    if f.seek(SeekFrom::Start(from)).is_err() || f.take(len - from).read_to_end(&mut bytes).is_err()
    {
        return None;
    }
    let whole = bytes.len() - bytes.len() % 2;
    *read_at = from + whole as u64;
    Some(level::measure(&level::samples_of(&bytes[..whole])))
}

/// # Safety
/// `core` is a valid core on this thread.
unsafe fn find_device(
    core: *mut sys::LinphoneCore,
    id: &str,
) -> Option<*mut sys::LinphoneAudioDevice> {
    // SAFETY: our core; the list's references are released except the one returned.
    unsafe {
        let list = sys::linphone_core_get_extended_audio_devices(core);
        let mut found = None;
        for item in ffi::list_items(list) {
            let d = item.cast::<sys::LinphoneAudioDevice>();
            if found.is_none()
                && ffi::string(sys::linphone_audio_device_get_id(d)).as_deref() == Some(id)
            {
                found = Some(d);
            } else {
                sys::linphone_audio_device_unref(d);
            }
        }
        sys::bctbx_list_free(list);
        found
    }
}

/// # Safety
/// `core` is a valid core on this thread.
unsafe fn start_mic(
    core: *mut sys::LinphoneCore,
    folder: &Path,
    device: Option<&str>,
    now: Instant,
) -> Result<Running, PhoneError> {
    let file = folder.join("mic-test.wav");
    let _ = std::fs::remove_file(&file);
    // SAFETY: our core; params and the device reference are released here; the recorder
    // is kept and released by `stop`.
    unsafe {
        let params = sys::linphone_core_create_recorder_params(core);
        if params.is_null() {
            return Err(PhoneError::Refused("test the microphone"));
        }
        sys::linphone_recorder_params_set_file_format(params, sys::LinphoneRecorderFileFormatWav);
        let dev = match device {
            Some(id) => match find_device(core, id) {
                Some(d) => d,
                None => {
                    sys::linphone_recorder_params_unref(params);
                    return Err(PhoneError::NoSuchDevice(id.to_owned()));
                }
            },
            None => ptr::null_mut(),
        };
        if !dev.is_null() {
            sys::linphone_recorder_params_set_audio_device(params, dev);
            sys::linphone_audio_device_unref(dev);
        }
        let recorder = sys::linphone_core_create_recorder(core, params);
        sys::linphone_recorder_params_unref(params);
        if recorder.is_null() {
            return Err(PhoneError::Refused("test the microphone"));
        }
        let path = cpath(&file);
        if sys::linphone_recorder_open(recorder, path.as_ptr()) != 0
            || sys::linphone_recorder_start(recorder) != 0
        {
            sys::linphone_recorder_close(recorder);
            sys::linphone_recorder_unref(recorder);
            let _ = std::fs::remove_file(&file);
            return Err(PhoneError::Refused("test the microphone"));
        }
        Ok(Running::Mic {
            recorder,
            file,
            data_at: None,
            read_at: 0,
            next_level: now + LEVEL_EVERY,
            last: None,
        })
    }
}

/// # Safety
/// `core` is a valid core on this thread.
unsafe fn start_speaker(
    core: *mut sys::LinphoneCore,
    folder: &Path,
    device: Option<&str>,
    length: std::time::Duration,
) -> Result<Running, PhoneError> {
    let file = folder.join("speaker-test.wav");
    write_tone(&file, length).map_err(|_| PhoneError::Refused("write the test tone"))?;
    let card = device.map(cstr);
    // SAFETY: our core; the player is kept and released by `stop`.
    unsafe {
        let player = sys::linphone_core_create_local_player(
            core,
            card.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
            ptr::null(),
            ptr::null_mut(),
        );
        if player.is_null() {
            let _ = std::fs::remove_file(&file);
            return Err(match device {
                Some(id) => PhoneError::NoSuchDevice(id.to_owned()),
                None => PhoneError::Refused("test the speaker"),
            });
        }
        let path = cpath(&file);
        if sys::linphone_player_open(player, path.as_ptr()) != 0
            || sys::linphone_player_start(player) != 0
        {
            sys::linphone_player_close(player);
            sys::linphone_player_unref(player);
            let _ = std::fs::remove_file(&file);
            return Err(PhoneError::Refused("test the speaker"));
        }
        Ok(Running::Speaker { player, file })
    }
}

/// A 440 Hz tone with short fades, `length` long.
fn write_tone(path: &Path, length: std::time::Duration) -> std::io::Result<()> {
    let n = ((f64::from(TONE_RATE) * length.as_secs_f64()) as usize).max(2);
    let fade = (TONE_RATE / 50) as usize;
    let samples: Vec<i16> = (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(TONE_RATE);
            let edge = (i.min(n - 1 - i) as f64 / fade as f64).min(1.0);
            let v = TONE_AMPLITUDE * edge * (2.0 * std::f64::consts::PI * TONE_HZ * t).sin();
            (v * 32767.0) as i16
        })
        .collect();
    std::fs::write(path, crate::wav::pcm16(TONE_RATE, &samples))
}

//! Audio for the tests: making test signals (a tone, silence, μ-law for SIPp) and
//! checking recordings — loudness (RMS), the dominant frequency (a Goertzel scan), and how
//! much the loudness moves (speech comes in syllables, a tone does not).

use std::path::{Path, PathBuf};

/// The prerecorded client voice of the demo line (espeak-ng, Russian).
pub fn speech() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/client-voice.wav")
}

/// Write a mono 16-bit PCM WAV.
pub fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    std::fs::write(path, callhelper_phone::wav::pcm16(rate, samples)).expect("write wav");
}

fn tone_samples(hz: f32, secs: f32, rate: u32, amplitude: f32) -> Vec<i16> {
    let n = (secs * rate as f32) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            (amplitude * 32767.0 * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16
        })
        .collect()
}

/// A sine tone WAV (16 kHz, half scale).
pub fn write_tone(path: &Path, hz: f32, secs: f32) -> PathBuf {
    write_tone_at(path, hz, secs, 16_000)
}

/// A sine tone WAV at a sample rate (baresip's `aufile` reads 8 kHz only).
pub fn write_tone_at(path: &Path, hz: f32, secs: f32, rate: u32) -> PathBuf {
    write_wav(path, rate, &tone_samples(hz, secs, rate, 0.5));
    path.to_path_buf()
}

/// A silent WAV: the control source that must fail every "audio flowed" check.
pub fn write_silence(path: &Path, secs: f32) -> PathBuf {
    write_wav(path, 16_000, &vec![0; (secs * 16_000.0) as usize]);
    path.to_path_buf()
}

/// A raw μ-law (PCMU, 8 kHz) tone for SIPp's `rtp_stream`.
pub fn write_ulaw_tone(path: &Path, hz: f32, secs: f32) -> PathBuf {
    let bytes: Vec<u8> = tone_samples(hz, secs, 8_000, 0.5)
        .into_iter()
        .map(ulaw)
        .collect();
    std::fs::write(path, bytes).expect("write ulaw");
    path.to_path_buf()
}

/// G.711 μ-law encoding of one sample.
fn ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut x = i32::from(sample);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    x = x.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && x & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (x >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Read a PCM WAV (16-bit, any rate, channels mixed down) as samples in -1..1.
pub fn read_wav(path: &Path) -> (u32, Vec<f32>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WAVE",
        "{} is not a WAV file",
        path.display()
    );
    let (mut rate, mut channels, mut bits) = (0u32, 1usize, 16u16);
    let mut i = 12;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
        let body = &b[i + 8..(i + 8 + len).min(b.len())];
        if id == b"fmt " {
            channels = u16::from_le_bytes([body[2], body[3]]) as usize;
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            bits = u16::from_le_bytes([body[14], body[15]]);
        } else if id == b"data" {
            assert_eq!(bits, 16, "{}: only 16-bit PCM is read here", path.display());
            let frames = body.chunks_exact(2 * channels);
            let samples = frames
                .map(|f| {
                    let sum: f32 = f
                        .chunks_exact(2)
                        .map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0)
                        .sum();
                    sum / channels as f32
                })
                .collect();
            return (rate, samples);
        }
        i += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// What a recording sounds like, in numbers.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub seconds: f32,
    /// RMS amplitude (full scale = 1), ignoring the first half second (call set-up).
    pub rms: f32,
    /// The strongest frequency between 60 Hz and 3.5 kHz.
    pub dominant_hz: f32,
    /// Spread of the 50 ms loudness over the loud part (standard deviation / mean):
    /// near 0 for a steady tone, well above for speech.
    pub envelope_variation: f32,
}

/// A recording without its first half second (call set-up), and up to three seconds of
/// it decimated to about 8 kHz for frequency scans.
struct Excerpt {
    rate: u32,
    seconds: f32,
    body: Vec<f32>,
    low: Vec<f32>,
    low_rate: f32,
}

fn excerpt(path: &Path) -> Excerpt {
    let (rate, all) = read_wav(path);
    let body = all[(rate as usize / 2).min(all.len())..].to_vec();
    let k = (rate / 8000).max(1) as usize;
    let low_rate = rate as f32 / k as f32;
    let mut low: Vec<f32> = body
        .chunks(k)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    low.truncate((low_rate * 3.0) as usize);
    Excerpt {
        rate,
        seconds: all.len() as f32 / rate as f32,
        body,
        low,
        low_rate,
    }
}

pub fn analyse(path: &Path) -> Stats {
    let Excerpt {
        rate,
        seconds,
        body: x,
        low: window,
        low_rate,
    } = excerpt(path);
    let rms = (x.iter().map(|s| s * s).sum::<f32>() / x.len().max(1) as f32).sqrt();
    let mut best = (0.0f32, 0.0f32);
    let mut f = 60.0;
    while f <= 3500.0 {
        let p = goertzel(&window, low_rate, f);
        if p > best.1 {
            best = (f, p);
        }
        f += 5.0;
    }
    let frame = (rate as usize / 20).max(1);
    let frames: Vec<f32> = x
        .chunks(frame)
        .map(|c| (c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32).sqrt())
        .collect();
    let loud: Vec<f32> = frames.iter().copied().filter(|r| *r > 0.003).collect();
    let envelope_variation = if loud.len() < 4 {
        0.0
    } else {
        let mean = loud.iter().sum::<f32>() / loud.len() as f32;
        let var = loud.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / loud.len() as f32;
        var.sqrt() / mean
    };
    Stats {
        seconds,
        rms,
        dominant_hz: best.0,
        envelope_variation,
    }
}

fn goertzel(x: &[f32], rate: f32, f: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * f / rate;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &v in x {
        let s0 = v + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

/// Audio flowed and it was the tone: loud enough, and its frequency.
pub fn check_tone(path: &Path, hz: f32) -> Result<Stats, String> {
    let s = analyse(path);
    if s.rms > 0.05 && (s.dominant_hz - hz).abs() <= 40.0 {
        Ok(s)
    } else {
        Err(format!(
            "{}: expected a {hz} Hz tone (RMS > 0.05, peak within 40 Hz), got {s:?}",
            path.display()
        ))
    }
}

/// Audio flowed and it was speech: loud enough, a voice-band peak that is not the test
/// tone, and a loudness that comes and goes.
pub fn check_speech(path: &Path) -> Result<Stats, String> {
    let s = analyse(path);
    let voice_band = (80.0..=1500.0).contains(&s.dominant_hz);
    let not_the_tone = (s.dominant_hz - 440.0).abs() > 40.0;
    if s.rms > 0.02 && voice_band && not_the_tone && s.envelope_variation > 0.35 {
        Ok(s)
    } else {
        Err(format!(
            "{}: expected speech (RMS > 0.02, peak 80-1500 Hz not 440, loudness variation > 0.35), got {s:?}",
            path.display()
        ))
    }
}

#[test]
fn the_checks_tell_tone_speech_and_silence_apart() {
    let dir = super::Scratch::new("audio-checks");
    let tone = write_tone(&dir.join("tone.wav"), 440.0, 3.0);
    let silence = write_silence(&dir.join("silence.wav"), 3.0);
    assert!(
        check_tone(&tone, 440.0).is_ok(),
        "{:?}",
        check_tone(&tone, 440.0)
    );
    assert!(
        check_speech(&speech()).is_ok(),
        "{:?}",
        check_speech(&speech())
    );
    assert!(check_tone(&speech(), 440.0).is_err());
    assert!(check_speech(&tone).is_err());
    assert!(check_tone(&silence, 440.0).is_err());
    assert!(check_speech(&silence).is_err());
    assert!(check_tone(&write_tone(&dir.join("1k.wav"), 1000.0, 3.0), 440.0).is_err());
}

#[test]
fn ulaw_encoding_matches_g711() {
    assert_eq!(ulaw(0), 0xff);
    assert_eq!(ulaw(-1), 0x7f);
    assert_eq!(ulaw(32767), 0x80);
    assert_eq!(ulaw(-32768), 0x00);
}

/// Every one of `tones` is clearly present (a mixed recording of both directions): each
/// stands 20 dB above the spectrum 150 Hz away.
pub fn check_tones_present(path: &Path, tones: &[f32]) -> Result<(), String> {
    let Excerpt {
        low: window,
        low_rate,
        ..
    } = excerpt(path);
    let energy: f32 = window.iter().map(|s| s * s).sum::<f32>() / window.len().max(1) as f32;
    for &f in tones {
        let on = goertzel(&window, low_rate, f);
        let off = goertzel(&window, low_rate, f + 150.0);
        if energy.sqrt() < 0.02 || on < 100.0 * off.max(1e-9) {
            return Err(format!(
                "{}: no clear {f} Hz component (power {on:.3e} vs {off:.3e} beside it, RMS {:.4})",
                path.display(),
                energy.sqrt()
            ));
        }
    }
    Ok(())
}

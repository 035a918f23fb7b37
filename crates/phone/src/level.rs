//! Sound levels for the microphone test: RMS and peak of 16-bit samples in dBFS, and
//! where the samples start in the WAV file the test capture is written to.
//!
//! Pure: the engine thread reads the bytes and hands them over.

use serde::Serialize;

/// The lowest level reported: digital silence (one 16-bit step is about −90 dBFS).
pub const FLOOR_DBFS: f32 = -96.0;

/// A measured sound level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Level {
    /// Root-mean-square level in dBFS (0 = full scale; a full-scale sine is −3).
    pub rms_dbfs: f32,
    /// The loudest sample in dBFS.
    pub peak_dbfs: f32,
    /// How many samples the figures cover (0: nothing was captured since the last one).
    pub samples: usize,
}

impl Level {
    /// Nothing captured.
    pub const SILENT: Level = Level {
        rms_dbfs: FLOOR_DBFS,
        peak_dbfs: FLOOR_DBFS,
        samples: 0,
    };
}

fn dbfs(linear: f64) -> f32 {
    if linear <= 0.0 {
        return FLOOR_DBFS;
    }
    ((20.0 * linear.log10()) as f32).clamp(FLOOR_DBFS, 0.0)
}

/// The level of some samples (all channels together).
pub fn measure(samples: &[i16]) -> Level {
    if samples.is_empty() {
        return Level::SILENT;
    }
    let mut sum = 0f64;
    let mut peak = 0i32;
    for &s in samples {
        let v = f64::from(s) / 32768.0;
        sum += v * v;
        peak = peak.max(i32::from(s).abs());
    }
    Level {
        rms_dbfs: dbfs((sum / samples.len() as f64).sqrt()),
        peak_dbfs: dbfs(f64::from(peak) / 32768.0),
        samples: samples.len(),
    }
}

/// Little-endian 16-bit samples from bytes (an odd last byte is ignored).
pub fn samples_of(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Where the samples of a 16-bit PCM WAV begin, from the first bytes of the file (the
/// header of a file still being written; its sizes are not trusted). `None` until the
/// `data` chunk's header is within `head`, or when the file is not 16-bit PCM.
pub fn pcm_data_offset(head: &[u8]) -> Option<usize> {
    if head.len() < 12 || &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12usize;
    let mut pcm16 = false;
    while at + 8 <= head.len() {
        let id = &head[at..at + 4];
        let len = u32::from_le_bytes(head[at + 4..at + 8].try_into().ok()?) as usize;
        if id == b"data" {
            return pcm16.then_some(at + 8);
        }
        if id == b"fmt " {
            let fmt = head.get(at + 8..at + 8 + 16)?;
            let format = u16::from_le_bytes([fmt[0], fmt[1]]);
            let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
            pcm16 = (format == 1 || format == 0xFFFE) && bits == 16;
        }
        at += 8 + len + (len & 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(amplitude: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                (amplitude * 32767.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn a_half_scale_sine_is_about_minus_9_rms_and_minus_6_peak() {
        let l = measure(&sine(0.5, 16_000));
        assert!((l.rms_dbfs - -9.03).abs() < 0.2, "{l:?}");
        assert!((l.peak_dbfs - -6.02).abs() < 0.2, "{l:?}");
        assert_eq!(l.samples, 16_000);
    }

    #[test]
    fn silence_and_nothing_sit_at_the_floor() {
        assert_eq!(measure(&[0; 1600]).rms_dbfs, FLOOR_DBFS);
        assert_eq!(measure(&[0; 1600]).peak_dbfs, FLOOR_DBFS);
        assert_eq!(measure(&[]), Level::SILENT);
    }

    #[test]
    fn full_scale_does_not_go_above_zero() {
        let l = measure(&[i16::MIN, i16::MAX]);
        assert!(l.peak_dbfs <= 0.0 && l.peak_dbfs > -0.01);
    }

    fn header(bits: u16, extra_chunk: bool) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF\0\0\0\0WAVE");
        if extra_chunk {
            b.extend_from_slice(b"LIST\x03\0\0\0abc\0");
        }
        b.extend_from_slice(b"fmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&16_000u32.to_le_bytes());
        b.extend_from_slice(&32_000u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b.extend_from_slice(b"data\0\0\0\0");
        b
    }

    #[test]
    fn the_samples_start_after_the_data_chunk_header() {
        assert_eq!(pcm_data_offset(&header(16, false)), Some(44));
        // A padded odd-sized chunk before `fmt `.
        assert_eq!(pcm_data_offset(&header(16, true)), Some(56));
        assert_eq!(pcm_data_offset(&header(8, false)), None, "8-bit");
        assert_eq!(
            pcm_data_offset(&header(16, false)[..40]),
            None,
            "incomplete"
        );
        assert_eq!(pcm_data_offset(b"not a wav file at all, no"), None);
    }

    #[test]
    fn bytes_become_little_endian_samples() {
        assert_eq!(samples_of(&[0x01, 0x00, 0xFF, 0xFF, 0x7F]), [1, -1]);
    }
}

//! Call recordings as finished files.
//!
//! liblinphone's WAV recorder leaves the sizes in the header wrong when a call ends (the
//! `data` chunk claims the length of the whole file, so players and `sox` report a
//! premature end). [`repair_header`] rewrites the two sizes from the file's real length
//! once the recorder has closed it; the samples are not touched.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A mono 16-bit PCM WAV file of `samples` at `rate` Hz, as bytes.
pub fn pcm16(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX);
    let mut b = Vec::with_capacity(44 + samples.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes()); // the fmt chunk's size
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&rate.saturating_mul(2).to_le_bytes()); // bytes per second
    b.extend_from_slice(&2u16.to_le_bytes()); // bytes per frame
    b.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// Where the sizes of a RIFF/WAVE file's header are, as read from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// The RIFF size (file length − 8) as written.
    riff: u32,
    /// Where the `data` chunk's size is.
    data_size_at: u64,
    /// The `data` chunk's size as written.
    data: u32,
}

/// Find the `data` chunk in a WAV file's first bytes; `None` when it is not a WAV file
/// or the chunk is not within `head`.
fn layout(head: &[u8]) -> Option<Layout> {
    if head.len() < 12 || &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let u32_at = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(head.get(i..i + 4)?.try_into().ok()?))
    };
    let riff = u32_at(4)?;
    let mut at = 12usize;
    while at + 8 <= head.len() {
        let len = u32_at(at + 4)?;
        if &head[at..at + 4] == b"data" {
            return Some(Layout {
                riff,
                data_size_at: at as u64 + 4,
                data: len,
            });
        }
        at = at.checked_add(8 + len as usize + (len as usize & 1))?;
    }
    None
}

/// Make a WAV file's header sizes match its length. Returns whether it changed anything;
/// a file that is not a WAV file (or too long for one) is left alone.
pub fn repair_header(path: &Path) -> io::Result<bool> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let mut head = Vec::with_capacity(4096);
    Read::by_ref(&mut f).take(4096).read_to_end(&mut head)?;
    let Some(l) = layout(&head) else {
        return Ok(false);
    };
    let data_start = l.data_size_at + 4;
    let (Ok(riff), Ok(data)) = (
        u32::try_from(len.saturating_sub(8)),
        u32::try_from(len.saturating_sub(data_start)),
    ) else {
        return Ok(false);
    };
    if l.riff == riff && l.data == data {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(4))?;
    f.write_all(&riff.to_le_bytes())?;
    f.seek(SeekFrom::Start(l.data_size_at))?;
    f.write_all(&data.to_le_bytes())?;
    f.sync_all()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mono 16-bit WAV header with the given sizes, then `samples` bytes of audio.
    #[test]
    fn pcm16_writes_a_header_that_matches_its_length() {
        let b = pcm16(8_000, &[0, 1, -1, i16::MAX]);
        assert_eq!(b.len(), 44 + 8);
        assert_eq!(
            layout(&b),
            Some(Layout {
                riff: 44,
                data_size_at: 40,
                data: 8
            })
        );
        assert_eq!(&b[24..28], &8_000u32.to_le_bytes());
        assert_eq!(&b[50..52], &i16::MAX.to_le_bytes());
    }

    fn wav(riff: u32, data: u32, samples: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&riff.to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&[1, 0, 1, 0]);
        b.extend_from_slice(&16000u32.to_le_bytes());
        b.extend_from_slice(&32000u32.to_le_bytes());
        b.extend_from_slice(&[2, 0, 16, 0]);
        b.extend_from_slice(b"data");
        b.extend_from_slice(&data.to_le_bytes());
        b.extend(std::iter::repeat_n(7u8, samples));
        b
    }

    fn scratch(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("callhelper-wav-{name}-{}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn sizes_that_claim_the_whole_file_are_put_right() {
        // What liblinphone leaves: the data size is the file's length.
        let bytes = wav(1000 + 44 + 32, 1000 + 44, 1000);
        let p = scratch("bad", &bytes);
        assert!(repair_header(&p).unwrap());
        let fixed = std::fs::read(&p).unwrap();
        assert_eq!(fixed, wav(1000 + 36, 1000, 1000), "only the sizes change");
        assert!(!repair_header(&p).unwrap(), "a second pass changes nothing");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn good_files_and_other_files_are_left_alone() {
        let good = scratch("good", &wav(36 + 10, 10, 10));
        assert!(!repair_header(&good).unwrap());
        let text = scratch("text", b"not a recording at all");
        assert!(!repair_header(&text).unwrap());
        assert_eq!(std::fs::read(&text).unwrap(), b"not a recording at all");
        let empty = scratch("empty", b"");
        assert!(!repair_header(&empty).unwrap());
        // A chunk size that points past the end is not followed.
        let mut odd = wav(36, 0, 0);
        odd[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        let odd_path = scratch("odd", &odd);
        assert!(!repair_header(&odd_path).unwrap());
        for p in [good, text, empty, odd_path] {
            std::fs::remove_file(p).unwrap();
        }
    }
}

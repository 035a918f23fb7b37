//! Call quality: the figures kept with each call, an estimated MOS, and the watch that
//! notices a connected call with no audio flowing.
//!
//! Pure: the engine thread samples liblinphone's RTP counters and passes them in with the
//! time of the sample.

use std::time::{Duration, Instant};

use serde::Serialize;

/// The codec family of a call, for the MOS estimate (ITU-T G.113 impairment values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Codec {
    /// G.711 µ-law or A-law (PCMU/PCMA).
    G711,
    /// G.722 wideband.
    G722,
    /// Opus.
    Opus,
    /// Anything else (GSM, Speex, iLBC...).
    Other,
}

impl Codec {
    /// From an RTP payload name (`"PCMU"`, `"opus"`...).
    pub fn from_mime(mime: &str) -> Codec {
        match mime.to_ascii_lowercase().as_str() {
            "pcmu" | "pcma" => Codec::G711,
            "g722" => Codec::G722,
            "opus" => Codec::Opus,
            _ => Codec::Other,
        }
    }

    /// Equipment impairment `Ie` and packet-loss robustness `Bpl` (with packet-loss
    /// concealment). Opus has no G.113 entry; it is given G.711-with-PLC figures, which
    /// understate it a little.
    fn impairment(self) -> (f64, f64) {
        match self {
            Codec::G711 | Codec::Opus => (0.0, 25.1),
            Codec::G722 => (0.0, 20.0),
            Codec::Other => (11.0, 19.0),
        }
    }
}

/// What the network did to one call's audio at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    /// Interarrival jitter of the audio we receive, in milliseconds.
    pub jitter_ms: f32,
    /// Share of the packets we should have received that were lost, in percent.
    pub loss_percent: f32,
    /// Round-trip time from RTCP, in milliseconds (none before the first report).
    pub rtt_ms: Option<f32>,
    /// Estimated mean opinion score, 1 (bad) to 4.5 (best narrowband can be).
    pub mos: f32,
}

/// Estimate the MOS with the ITU-T G.107 E-model, simplified to what a softphone
/// measures: one-way delay (half the round trip plus the jitter buffer and 20 ms of
/// packetisation), packet loss and the codec.
pub fn estimate_mos(rtt_ms: Option<f32>, jitter_ms: f32, loss_percent: f32, codec: Codec) -> f32 {
    // Without an RTCP round trip yet, assume a short LAN path.
    let rtt = f64::from(rtt_ms.unwrap_or(20.0)).max(0.0);
    // An adaptive jitter buffer holds about twice the jitter.
    let delay = rtt / 2.0 + 2.0 * f64::from(jitter_ms).max(0.0) + 20.0;
    let id = 0.024 * delay
        + if delay > 177.3 {
            0.11 * (delay - 177.3)
        } else {
            0.0
        };
    let (ie, bpl) = codec.impairment();
    let ppl = f64::from(loss_percent).clamp(0.0, 100.0);
    let ie_eff = ie + (95.0 - ie) * ppl / (ppl + bpl);
    let r = 93.2 - id - ie_eff;
    let mos = if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + 7.0e-6 * r * (r - 60.0) * (100.0 - r)
    };
    mos.clamp(1.0, 4.5) as f32
}

/// The quality figures of a whole call: averages and worst values over its samples.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct QualitySummary {
    /// How many samples were taken while audio was expected.
    pub samples: u32,
    /// Mean jitter, in milliseconds.
    pub jitter_ms_avg: f32,
    /// Worst jitter, in milliseconds.
    pub jitter_ms_max: f32,
    /// Packet loss over the whole call, in percent.
    pub loss_percent: f32,
    /// Mean round-trip time, in milliseconds (none without RTCP reports).
    pub rtt_ms_avg: Option<f32>,
    /// Mean estimated MOS.
    pub mos_avg: f32,
    /// Worst estimated MOS.
    pub mos_min: f32,
}

/// Accumulates [`Quality`] samples into a [`QualitySummary`].
#[derive(Debug, Clone, Default)]
pub struct QualityTrack {
    samples: u32,
    jitter_sum: f64,
    jitter_max: f32,
    rtt_sum: f64,
    rtt_samples: u32,
    mos_sum: f64,
    mos_min: f32,
    last_loss: f32,
}

impl QualityTrack {
    /// Add one sample. `loss_percent` is cumulative over the call, so the last one wins.
    pub fn add(&mut self, q: Quality) {
        self.samples += 1;
        self.jitter_sum += f64::from(q.jitter_ms);
        self.jitter_max = self.jitter_max.max(q.jitter_ms);
        if let Some(rtt) = q.rtt_ms {
            self.rtt_sum += f64::from(rtt);
            self.rtt_samples += 1;
        }
        self.mos_sum += f64::from(q.mos);
        self.mos_min = if self.samples == 1 {
            q.mos
        } else {
            self.mos_min.min(q.mos)
        };
        self.last_loss = q.loss_percent;
    }

    /// The summary so far (all zero without samples).
    pub fn summary(&self) -> QualitySummary {
        if self.samples == 0 {
            return QualitySummary::default();
        }
        let n = f64::from(self.samples);
        QualitySummary {
            samples: self.samples,
            jitter_ms_avg: (self.jitter_sum / n) as f32,
            jitter_ms_max: self.jitter_max,
            loss_percent: self.last_loss,
            rtt_ms_avg: (self.rtt_samples > 0)
                .then(|| (self.rtt_sum / f64::from(self.rtt_samples)) as f32),
            mos_avg: (self.mos_sum / n) as f32,
            mos_min: self.mos_min,
        }
    }
}

/// RTP packet counters of a call's audio stream at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaCounters {
    /// Packets received so far.
    pub received: u64,
    /// Packets sent so far.
    pub sent: u64,
}

/// Which way audio is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaDirection {
    /// Nothing arrives from the far end.
    Incoming,
    /// We send nothing (no microphone, no file, a broken device).
    Outgoing,
}

/// A change in whether audio flows, reported by [`MediaWatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "media", rename_all = "snake_case")]
pub enum MediaAlarm {
    /// Audio was expected but none moved in `direction` for `silent_for`.
    Stalled {
        /// Which way.
        direction: MediaDirection,
        /// How long nothing moved, in milliseconds.
        silent_ms: u64,
    },
    /// Audio moves again in `direction` after a stall.
    Recovered {
        /// Which way.
        direction: MediaDirection,
    },
}

/// Watches one direction's packet counter.
#[derive(Debug, Clone, Default)]
struct Flow {
    last: Option<u64>,
    quiet_since: Option<Instant>,
    alarmed: bool,
}

impl Flow {
    fn observe(
        &mut self,
        now: Instant,
        count: u64,
        expected: bool,
        grace: Duration,
        dir: MediaDirection,
    ) -> Option<MediaAlarm> {
        let moved = self.last.is_some_and(|last| count > last);
        self.last = Some(count);
        if moved {
            self.quiet_since = None;
            if self.alarmed {
                self.alarmed = false;
                return Some(MediaAlarm::Recovered { direction: dir });
            }
            return None;
        }
        if !expected {
            // Quiet is fine here (on hold, muted, ringing); start counting afresh later.
            self.quiet_since = None;
            return None;
        }
        let since = *self.quiet_since.get_or_insert(now);
        let silent = now.saturating_duration_since(since);
        if !self.alarmed && silent >= grace {
            self.alarmed = true;
            return Some(MediaAlarm::Stalled {
                direction: dir,
                silent_ms: silent.as_millis() as u64,
            });
        }
        None
    }
}

/// Notices a call that is connected but whose audio does not flow, in either direction,
/// and says when it flows again. One alarm per stall.
#[derive(Debug, Clone)]
pub struct MediaWatch {
    grace: Duration,
    incoming: Flow,
    outgoing: Flow,
}

/// Which directions audio is expected in right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// Audio should arrive.
    pub incoming: bool,
    /// Audio should leave.
    pub outgoing: bool,
}

impl MediaWatch {
    /// A watch that raises an alarm after `grace` without packets.
    pub fn new(grace: Duration) -> MediaWatch {
        MediaWatch {
            grace,
            incoming: Flow::default(),
            outgoing: Flow::default(),
        }
    }

    /// Feed the counters sampled at `now`; returns the alarms this sample raises.
    pub fn observe(
        &mut self,
        now: Instant,
        counters: MediaCounters,
        expect: Expect,
    ) -> Vec<MediaAlarm> {
        let mut out = Vec::new();
        out.extend(self.incoming.observe(
            now,
            counters.received,
            expect.incoming,
            self.grace,
            MediaDirection::Incoming,
        ));
        out.extend(self.outgoing.observe(
            now,
            counters.sent,
            expect.outgoing,
            self.grace,
            MediaDirection::Outgoing,
        ));
        out
    }

    /// Whether audio is currently reported missing in some direction.
    pub fn stalled(&self) -> bool {
        self.incoming.alarmed || self.outgoing.alarmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_lan_call_scores_near_the_top() {
        let mos = estimate_mos(Some(1.0), 0.5, 0.0, Codec::G711);
        assert!((4.3..=4.5).contains(&mos), "{mos}");
    }

    #[test]
    fn loss_delay_and_codec_each_lower_the_score() {
        let base = estimate_mos(Some(40.0), 5.0, 0.0, Codec::G711);
        let lossy = estimate_mos(Some(40.0), 5.0, 5.0, Codec::G711);
        let slow = estimate_mos(Some(600.0), 5.0, 0.0, Codec::G711);
        let cheap = estimate_mos(Some(40.0), 5.0, 0.0, Codec::Other);
        assert!(lossy < base - 0.5, "{lossy} vs {base}");
        assert!(slow < base - 0.3, "{slow} vs {base}");
        assert!(cheap < base, "{cheap} vs {base}");
        // Half the packets lost is unusable.
        assert!(estimate_mos(Some(40.0), 5.0, 50.0, Codec::G711) < 2.0);
    }

    proptest::proptest! {
        #[test]
        fn mos_stays_in_range_and_never_improves_with_more_loss(
            rtt in 0.0f32..2000.0, jitter in 0.0f32..500.0, loss in 0.0f32..100.0, extra in 0.0f32..50.0,
        ) {
            let a = estimate_mos(Some(rtt), jitter, loss, Codec::Opus);
            let b = estimate_mos(Some(rtt), jitter, (loss + extra).min(100.0), Codec::Opus);
            proptest::prop_assert!((1.0..=4.5).contains(&a));
            proptest::prop_assert!(b <= a + 1e-6);
        }
    }

    #[test]
    fn codec_names_map_to_families() {
        assert_eq!(Codec::from_mime("PCMU"), Codec::G711);
        assert_eq!(Codec::from_mime("pcma"), Codec::G711);
        assert_eq!(Codec::from_mime("opus"), Codec::Opus);
        assert_eq!(Codec::from_mime("GSM"), Codec::Other);
    }

    #[test]
    fn summary_averages_and_keeps_the_worst() {
        let mut t = QualityTrack::default();
        assert_eq!(t.summary(), QualitySummary::default());
        t.add(Quality {
            jitter_ms: 2.0,
            loss_percent: 0.0,
            rtt_ms: None,
            mos: 4.4,
        });
        t.add(Quality {
            jitter_ms: 6.0,
            loss_percent: 1.5,
            rtt_ms: Some(30.0),
            mos: 3.6,
        });
        let s = t.summary();
        assert_eq!(s.samples, 2);
        assert_eq!(s.jitter_ms_avg, 4.0);
        assert_eq!(s.jitter_ms_max, 6.0);
        assert_eq!(s.loss_percent, 1.5);
        assert_eq!(s.rtt_ms_avg, Some(30.0));
        assert_eq!(s.mos_min, 3.6);
        assert!((s.mos_avg - 4.0).abs() < 1e-6);
    }

    const BOTH: Expect = Expect {
        incoming: true,
        outgoing: true,
    };
    const NONE: Expect = Expect {
        incoming: false,
        outgoing: false,
    };

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn flowing_audio_raises_nothing() {
        let t = Instant::now();
        let mut w = MediaWatch::new(Duration::from_secs(2));
        for i in 0..20u64 {
            let c = MediaCounters {
                received: i * 25,
                sent: i * 25,
            };
            assert!(w.observe(at(t, i * 500), c, BOTH).is_empty());
        }
        assert!(!w.stalled());
    }

    #[test]
    fn a_connected_call_with_nothing_sent_is_reported_once_then_recovers() {
        let t = Instant::now();
        let mut w = MediaWatch::new(Duration::from_secs(2));
        let mut alarms = Vec::new();
        for i in 0..10u64 {
            // Audio arrives, but we send nothing (no sound card and no file).
            alarms.extend(w.observe(
                at(t, i * 500),
                MediaCounters {
                    received: i * 25,
                    sent: 0,
                },
                BOTH,
            ));
        }
        assert_eq!(
            alarms,
            [MediaAlarm::Stalled {
                direction: MediaDirection::Outgoing,
                silent_ms: 2000
            }]
        );
        assert!(w.stalled());
        let back = w.observe(
            at(t, 6000),
            MediaCounters {
                received: 300,
                sent: 5,
            },
            BOTH,
        );
        assert_eq!(
            back,
            [MediaAlarm::Recovered {
                direction: MediaDirection::Outgoing
            }]
        );
        assert!(!w.stalled());
    }

    #[test]
    fn nothing_arriving_is_reported() {
        let t = Instant::now();
        let mut w = MediaWatch::new(Duration::from_millis(1500));
        let mut alarms = Vec::new();
        for i in 0..5u64 {
            alarms.extend(w.observe(
                at(t, i * 500),
                MediaCounters {
                    received: 0,
                    sent: i * 25,
                },
                BOTH,
            ));
        }
        assert_eq!(
            alarms,
            [MediaAlarm::Stalled {
                direction: MediaDirection::Incoming,
                silent_ms: 1500
            }]
        );
    }

    #[test]
    fn quiet_while_on_hold_is_not_a_fault_and_the_clock_restarts_after() {
        let t = Instant::now();
        let mut w = MediaWatch::new(Duration::from_secs(2));
        for i in 0..20u64 {
            assert!(
                w.observe(at(t, i * 500), MediaCounters::default(), NONE)
                    .is_empty()
            );
        }
        // Resumed at 10 s: the grace period counts from here, not from the start.
        assert!(
            w.observe(at(t, 10_000), MediaCounters::default(), BOTH)
                .is_empty()
        );
        assert!(
            w.observe(at(t, 11_500), MediaCounters::default(), BOTH)
                .is_empty()
        );
        assert_eq!(
            w.observe(at(t, 12_000), MediaCounters::default(), BOTH)
                .len(),
            2
        );
    }
}

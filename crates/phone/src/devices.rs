//! Audio device choice: a ranked list of preferred devices per role, and what to do when
//! the device in use vanishes (a headset unplugged) or a better one comes back.
//!
//! Pure: the engine thread lists the devices and applies the choice.

use serde::Serialize;

/// What a device is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceRole {
    /// The microphone.
    Capture,
    /// The speaker or headset for the call's audio.
    Playback,
    /// Where the ring tone plays (often the loudspeaker while a headset carries calls).
    Ringer,
}

impl DeviceRole {
    /// All roles, in a fixed order.
    pub const ALL: [DeviceRole; 3] = [
        DeviceRole::Capture,
        DeviceRole::Playback,
        DeviceRole::Ringer,
    ];
}

/// One audio device as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AudioDevice {
    /// The engine's identifier (`"PulseAudio Unknown: default"`...), stable while plugged in.
    pub id: String,
    /// A readable name.
    pub name: String,
    /// The sound system behind it (`ALSA`, `PulseAudio`...).
    pub driver: String,
    /// It can record.
    pub can_capture: bool,
    /// It can play.
    pub can_play: bool,
}

impl AudioDevice {
    fn serves(&self, role: DeviceRole) -> bool {
        match role {
            DeviceRole::Capture => self.can_capture,
            DeviceRole::Playback | DeviceRole::Ringer => self.can_play,
        }
    }

    /// Whether a preference entry names this device: the exact id, the exact name, or a
    /// case-insensitive part of the name (`"usb headset"`).
    fn matches(&self, wanted: &str) -> bool {
        let wanted = wanted.trim();
        !wanted.is_empty()
            && (self.id == wanted
                || self.name == wanted
                || self.name.to_lowercase().contains(&wanted.to_lowercase()))
    }
}

/// Ranked device preferences: for each role, the devices to use, best first. A device
/// that is not present is skipped; when none is present, the system's first suitable
/// device is used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DevicePreferences {
    /// Microphones, best first.
    pub capture: Vec<String>,
    /// Call audio outputs, best first.
    pub playback: Vec<String>,
    /// Ring tone outputs, best first.
    pub ringer: Vec<String>,
}

impl DevicePreferences {
    fn ranked(&self, role: DeviceRole) -> &[String] {
        match role {
            DeviceRole::Capture => &self.capture,
            DeviceRole::Playback => &self.playback,
            DeviceRole::Ringer => &self.ringer,
        }
    }
}

/// The device chosen for a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// The device's id; `None` when no device can serve the role.
    pub device: Option<String>,
    /// Its place in the preference list (0 = first choice); `None` for the system default.
    pub rank: Option<usize>,
}

/// Choose the device for `role` from the devices present now.
pub fn choose(role: DeviceRole, prefs: &DevicePreferences, present: &[AudioDevice]) -> Choice {
    let usable = || present.iter().filter(|d| d.serves(role));
    for (rank, wanted) in prefs.ranked(role).iter().enumerate() {
        if let Some(d) = usable().find(|d| d.matches(wanted)) {
            return Choice {
                device: Some(d.id.clone()),
                rank: Some(rank),
            };
        }
    }
    Choice {
        device: usable().next().map(|d| d.id.clone()),
        rank: None,
    }
}

/// A change of device for one role, to apply and to tell the user about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSwitch {
    /// Which role changed.
    pub role: DeviceRole,
    /// The device used before (`None` at start or when there was none).
    pub from: Option<String>,
    /// The device to use now (`None`: nothing can serve this role any more).
    pub to: Option<String>,
    /// Why.
    pub why: SwitchReason,
}

/// Why the device for a role changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchReason {
    /// First choice when the phone starts.
    Initial,
    /// The device in use vanished; the next one in the list took over.
    Vanished,
    /// A device ranked higher than the one in use appeared.
    BetterAvailable,
    /// The preferences were changed.
    PreferencesChanged,
}

/// Keeps the device in use for each role and decides the switches when devices come and
/// go or the preferences change.
#[derive(Debug, Clone, Default)]
pub struct DeviceSelector {
    prefs: DevicePreferences,
    current: [Option<Choice>; 3],
}

fn slot(role: DeviceRole) -> usize {
    match role {
        DeviceRole::Capture => 0,
        DeviceRole::Playback => 1,
        DeviceRole::Ringer => 2,
    }
}

impl DeviceSelector {
    /// A selector with these preferences and nothing chosen yet.
    pub fn new(prefs: DevicePreferences) -> DeviceSelector {
        DeviceSelector {
            prefs,
            current: Default::default(),
        }
    }

    /// The device in use for `role`, if any.
    pub fn current(&self, role: DeviceRole) -> Option<&str> {
        self.current[slot(role)]
            .as_ref()
            .and_then(|c| c.device.as_deref())
    }

    /// The device list changed (or was read for the first time): the switches to make.
    pub fn devices_changed(&mut self, present: &[AudioDevice]) -> Vec<DeviceSwitch> {
        self.reselect(present, None)
    }

    /// New preferences: the switches to make.
    pub fn set_preferences(
        &mut self,
        prefs: DevicePreferences,
        present: &[AudioDevice],
    ) -> Vec<DeviceSwitch> {
        self.prefs = prefs;
        self.reselect(present, Some(SwitchReason::PreferencesChanged))
    }

    fn reselect(
        &mut self,
        present: &[AudioDevice],
        forced: Option<SwitchReason>,
    ) -> Vec<DeviceSwitch> {
        let mut out = Vec::new();
        for role in DeviceRole::ALL {
            let next = choose(role, &self.prefs, present);
            let prev = self.current[slot(role)].take();
            let why = match (&prev, forced) {
                (None, _) => Some(SwitchReason::Initial),
                (Some(p), _) if p.device == next.device => None,
                (Some(_), Some(reason)) => Some(reason),
                (Some(p), None) => {
                    let still_there = p
                        .device
                        .as_ref()
                        .is_some_and(|id| present.iter().any(|d| &d.id == id));
                    Some(if still_there {
                        SwitchReason::BetterAvailable
                    } else {
                        SwitchReason::Vanished
                    })
                }
            };
            if let Some(why) = why {
                out.push(DeviceSwitch {
                    role,
                    from: prev.and_then(|p| p.device),
                    to: next.device.clone(),
                    why,
                });
            }
            self.current[slot(role)] = Some(next);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(id: &str, name: &str, capture: bool, play: bool) -> AudioDevice {
        AudioDevice {
            id: id.into(),
            name: name.into(),
            driver: "ALSA".into(),
            can_capture: capture,
            can_play: play,
        }
    }

    fn desk() -> Vec<AudioDevice> {
        vec![
            dev("ALSA: default", "default", true, true),
            dev("ALSA: USB Headset", "Jabra USB Headset", true, true),
            dev("ALSA: HDMI", "HDMI output", false, true),
        ]
    }

    fn prefs() -> DevicePreferences {
        DevicePreferences {
            capture: vec!["usb headset".into(), "ALSA: default".into()],
            playback: vec!["ALSA: USB Headset".into(), "default".into()],
            ringer: vec!["HDMI output".into()],
        }
    }

    #[test]
    fn the_first_present_preference_wins_by_id_name_or_part_of_name() {
        let d = desk();
        assert_eq!(
            choose(DeviceRole::Capture, &prefs(), &d),
            Choice {
                device: Some("ALSA: USB Headset".into()),
                rank: Some(0)
            }
        );
        assert_eq!(
            choose(DeviceRole::Ringer, &prefs(), &d),
            Choice {
                device: Some("ALSA: HDMI".into()),
                rank: Some(0)
            }
        );
    }

    #[test]
    fn a_device_that_cannot_serve_the_role_is_skipped() {
        let p = DevicePreferences {
            capture: vec!["HDMI output".into()],
            ..Default::default()
        };
        assert_eq!(
            choose(DeviceRole::Capture, &p, &desk()),
            Choice {
                device: Some("ALSA: default".into()),
                rank: None
            }
        );
    }

    #[test]
    fn nothing_present_means_no_device() {
        assert_eq!(
            choose(DeviceRole::Playback, &prefs(), &[]),
            Choice {
                device: None,
                rank: None
            }
        );
    }

    #[test]
    fn unplugging_the_headset_falls_back_and_plugging_it_in_returns() {
        let mut s = DeviceSelector::new(prefs());
        let start = s.devices_changed(&desk());
        assert_eq!(start.len(), 3);
        assert!(start.iter().all(|c| c.why == SwitchReason::Initial));
        assert_eq!(s.current(DeviceRole::Playback), Some("ALSA: USB Headset"));

        let unplugged: Vec<_> = desk()
            .into_iter()
            .filter(|d| !d.name.contains("USB"))
            .collect();
        let switches = s.devices_changed(&unplugged);
        assert_eq!(
            switches,
            [
                DeviceSwitch {
                    role: DeviceRole::Capture,
                    from: Some("ALSA: USB Headset".into()),
                    to: Some("ALSA: default".into()),
                    why: SwitchReason::Vanished,
                },
                DeviceSwitch {
                    role: DeviceRole::Playback,
                    from: Some("ALSA: USB Headset".into()),
                    to: Some("ALSA: default".into()),
                    why: SwitchReason::Vanished,
                },
            ]
        );
        // The ringer stays on HDMI: no switch to report.
        assert_eq!(s.current(DeviceRole::Ringer), Some("ALSA: HDMI"));

        let back = s.devices_changed(&desk());
        assert_eq!(back.len(), 2);
        assert!(back.iter().all(|c| c.why == SwitchReason::BetterAvailable
            && c.to.as_deref() == Some("ALSA: USB Headset")));
        assert!(
            s.devices_changed(&desk()).is_empty(),
            "no change, nothing to report"
        );
    }

    #[test]
    fn everything_gone_is_reported_as_no_device() {
        let mut s = DeviceSelector::new(prefs());
        s.devices_changed(&desk());
        let switches = s.devices_changed(&[]);
        assert_eq!(switches.len(), 3);
        assert!(
            switches
                .iter()
                .all(|c| c.to.is_none() && c.why == SwitchReason::Vanished)
        );
    }

    #[test]
    fn new_preferences_apply_at_once() {
        let mut s = DeviceSelector::new(prefs());
        s.devices_changed(&desk());
        let switches = s.set_preferences(
            DevicePreferences {
                playback: vec!["HDMI".into()],
                ..prefs()
            },
            &desk(),
        );
        assert_eq!(
            switches,
            [DeviceSwitch {
                role: DeviceRole::Playback,
                from: Some("ALSA: USB Headset".into()),
                to: Some("ALSA: HDMI".into()),
                why: SwitchReason::PreferencesChanged,
            }]
        );
    }
}

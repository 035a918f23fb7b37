//! Call set-up on loopback: INVITE sent → 200 OK → first RTP packet, our engine against
//! baresip calling the same SIPp answering peer in the same run, measured on the wire
//! with tcpdump. Prints the figures and the ratio (target: ours no slower than baresip).
//!
//! `cargo bench -p callhelper-phone --bench call_setup` (needs sip-tester, baresip and
//! tcpdump, and the right to capture on `lo`: root or CAP_NET_RAW). `CALLS=N` sets the
//! calls per client (default 7; 1 when `cargo test` runs it), alternating between the
//! two clients.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

use callhelper_phone::{AudioIo, CallOptions, CallState};
use support::audio::write_tone_at;
use support::peer::Peer;
use support::sip_peers::baresip_caller;
use support::{Party, SEC, Scratch, free_port, loopback_config, require, sipp};

fn main() -> ExitCode {
    // `cargo test --all-targets` runs this once without `--bench`: one call each then.
    let full = std::env::args().any(|a| a == "--bench");
    let calls: usize = std::env::var("CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 7 } else { 1 });
    let dir = Scratch::new("bench-call-setup");
    // 8 kHz: the one rate baresip's `aufile` takes; both clients play the same file.
    let tone = write_tone_at(&dir.join("tone.wav"), 440.0, 5.0, 8000);
    let media = free_port();
    let (mut far, port) = sipp(
        &dir,
        "sipp",
        "uas",
        &[
            "-rtp_echo",
            "-mp",
            &media.to_string(),
            "-m",
            &(4 * calls).to_string(),
        ],
    );
    let capture = dir.join("setup.pcap");
    let mut tcpdump = match start_capture(&dir, &capture) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("call_setup: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bare = baresip_caller(&dir, &tone);
    let ours = |name: &'static str, ptime: Option<u16>, fixed_tick: Option<Duration>| {
        let audio = AudioIo::Files {
            play: Some(tone.clone()),
            speaker: None,
        };
        let mut config = loopback_config(&dir.join(name), audio);
        config.ptime = ptime;
        config.fixed_tick = fixed_tick;
        Party::start(name, config)
    };
    // Our engine as it ships (adaptive cadence, 20 ms packets); with 10 ms packets; and
    // driven like a plain liblinphone loop (iterate every 20 ms), for comparison.
    let mut ours20 = ours("ours", None, None);
    let mut ours10 = ours("ours-10ms", Some(10), None);
    let mut fixed = ours("fixed-tick", None, Some(Duration::from_millis(20)));
    let target = format!("sip:service@127.0.0.1:{port}");

    for _ in 0..calls {
        for p in [&mut ours20, &mut ours10, &mut fixed] {
            let call = p.phone.call(&target, CallOptions::default()).unwrap();
            p.wait_state(call, |s| *s == CallState::Connected, 5 * SEC);
            std::thread::sleep(Duration::from_millis(500));
            p.phone.hang_up(call).unwrap();
            p.wait_state(call, |s| s.is_ended(), 5 * SEC);
            std::thread::sleep(Duration::from_millis(300));
        }
        bare.command("dial", &target);
        std::thread::sleep(Duration::from_millis(1200));
        bare.command("hangup", "");
        std::thread::sleep(Duration::from_millis(300));
    }
    far.expect_success(10 * SEC);
    std::thread::sleep(Duration::from_millis(300));
    drop(tcpdump.stop());

    let packets = pcap::read(&capture);
    let report = |name: &str, sip_port: u16| -> Option<f64> {
        let setups = setups(&packets, sip_port, port, media);
        if setups.is_empty() {
            println!("{name:>10}: no complete call set-up found in the capture");
            return None;
        }
        let ok: Vec<f64> = setups.iter().map(|s| s.invite_to_200).collect();
        let media_start: Vec<f64> = setups.iter().map(|s| s.ok_to_rtp).collect();
        let total: Vec<f64> = setups
            .iter()
            .map(|s| s.invite_to_200 + s.ok_to_rtp)
            .collect();
        println!(
            "{name:>10}: {} calls  INVITE→200 OK median {:6.2} ms  200 OK→first RTP median {:6.2} ms  \
             INVITE→first RTP median {:6.2} ms (min {:.2}, max {:.2})",
            setups.len(),
            median(&ok),
            median(&media_start),
            median(&total),
            total.iter().copied().fold(f64::MAX, f64::min),
            total.iter().copied().fold(0.0, f64::max),
        );
        Some(median(&total))
    };
    println!("call set-up on loopback against SIPp (uas, RTP echo), {calls} calls each, same run:");
    let a = report("ours", ours20.phone.ports().udp.expect("udp"));
    let a10 = report("ours10ms", ours10.phone.ports().udp.expect("udp"));
    let f = report("fixed20ms", fixed.phone.ports().udp.expect("udp"));
    let b = report("baresip", bare.sip);
    match (a, a10, f, b) {
        (Some(a), Some(a10), Some(f), Some(b)) => {
            println!(
                "ratio ours/baresip (INVITE→first RTP, medians): {:.2} (target ≤ 1.00)",
                a / b
            );
            println!("ratio ours with 10 ms packets/baresip: {:.2}", a10 / b);
            println!("ratio plain 20 ms liblinphone loop/baresip: {:.2}", f / b);
            ExitCode::SUCCESS
        }
        _ => {
            println!("capture kept in {}", capture.display());
            ExitCode::FAILURE
        }
    }
}

fn start_capture(dir: &Scratch, file: &Path) -> Result<Capture, String> {
    let bin = require("tcpdump", "tcpdump");
    let mut cmd = Command::new(bin);
    cmd.args([
        "-i",
        "lo",
        "-n",
        "-U",
        "-s",
        "4096",
        "--time-stamp-precision=micro",
        "-w",
    ])
    .arg(file)
    .arg("udp");
    let peer = Peer::spawn("tcpdump", cmd, dir.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let out = peer.output();
        if out.contains("listening on") {
            return Ok(Capture(Some(peer)));
        }
        if out.contains("permission") || out.contains("Operation not permitted") {
            return Err(format!(
                "tcpdump cannot capture on lo (run as root or give it CAP_NET_RAW):\n{out}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("tcpdump did not start:\n{}", peer.tail()))
}

/// The capture; dropping it stops tcpdump (SIGTERM flushes the file).
struct Capture(Option<Peer>);

impl Capture {
    fn stop(&mut self) -> Option<Peer> {
        self.0.take()
    }
}

struct Setup {
    invite_to_200: f64,
    ok_to_rtp: f64,
}

/// For each call from `client` (its SIP port) to the peer: INVITE (first transmission) →
/// 200 OK for it → the first RTP packet into the peer's media port after the 200 OK.
fn setups(packets: &[pcap::Packet], client: u16, peer: u16, media: u16) -> Vec<Setup> {
    let mut invites: HashMap<String, f64> = HashMap::new();
    let mut oks: Vec<(f64, f64)> = Vec::new();
    for p in packets {
        let text = String::from_utf8_lossy(&p.payload);
        let call_id = text
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID:").or_else(|| l.strip_prefix("i:")));
        if p.src_port == client && p.dst_port == peer && text.starts_with("INVITE ") {
            if let Some(id) = call_id {
                invites.entry(id.trim().to_string()).or_insert(p.time);
            }
        } else if p.src_port == peer
            && p.dst_port == client
            && text.starts_with("SIP/2.0 200")
            && text.contains("INVITE")
        {
            if let Some(sent) = call_id.and_then(|id| invites.remove(id.trim())) {
                oks.push((sent, p.time));
            }
        }
    }
    oks.iter()
        .filter_map(|&(invite, ok)| {
            let rtp = packets.iter().find(|p| {
                p.time >= ok
                    && p.dst_port == media
                    && p.payload.len() >= 12
                    && p.payload[0] & 0xc0 == 0x80
            })?;
            Some(Setup {
                invite_to_200: (ok - invite) * 1000.0,
                ok_to_rtp: (rtp.time - ok) * 1000.0,
            })
        })
        .collect()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Just enough of the pcap format for UDP over IPv4 on the loopback device.
mod pcap {
    use std::path::Path;

    pub struct Packet {
        /// Seconds since the epoch.
        pub time: f64,
        pub src_port: u16,
        pub dst_port: u16,
        pub payload: Vec<u8>,
    }

    pub fn read(path: &Path) -> Vec<Packet> {
        let b =
            std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(b.len() >= 24, "{} is not a pcap file", path.display());
        let magic = u32::from_le_bytes(b[0..4].try_into().unwrap());
        let nanos = match magic {
            0xa1b2_c3d4 => false,
            0xa1b2_3c4d => true,
            other => panic!("unsupported pcap magic {other:#x}"),
        };
        let link = u32::from_le_bytes(b[20..24].try_into().unwrap());
        let link_header = match link {
            1 => 14,   // Ethernet (Linux `lo`)
            113 => 16, // Linux cooked
            276 => 20, // Linux cooked v2
            0 => 4,    // BSD loopback
            other => panic!("unsupported pcap link type {other}"),
        };
        let mut out = Vec::new();
        let mut i = 24;
        while i + 16 <= b.len() {
            let word = |o: usize| u32::from_le_bytes(b[i + o..i + o + 4].try_into().unwrap());
            let (sec, frac, caplen) = (word(0), word(4), word(8) as usize);
            let data = &b[i + 16..(i + 16 + caplen).min(b.len())];
            i += 16 + caplen;
            let time = f64::from(sec) + f64::from(frac) / if nanos { 1e9 } else { 1e6 };
            let Some(ip) = data.get(link_header..) else {
                continue;
            };
            if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
                continue;
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let Some(udp) = ip.get(ihl..) else { continue };
            if udp.len() < 8 {
                continue;
            }
            out.push(Packet {
                time,
                src_port: u16::from_be_bytes([udp[0], udp[1]]),
                dst_port: u16::from_be_bytes([udp[2], udp[3]]),
                payload: udp[8..].to_vec(),
            });
        }
        out
    }
}

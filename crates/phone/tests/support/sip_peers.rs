//! Kamailio (a real registrar and proxy with digest auth) and baresip (an independent SIP
//! client that registers there, answers, plays a WAV and records what it hears).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use callhelper_phone::{Account, Secret, Transport};

use super::peer::Peer;
use super::{Scratch, bound, free_port, require};

/// The SIP domain the registrar serves.
pub const DOMAIN: &str = "callhelper.test";

pub struct Registrar {
    pub peer: Peer,
    pub port: u16,
    pub tls_port: Option<u16>,
    /// The certificate authority to trust for TLS (the server's self-signed certificate).
    pub ca: Option<PathBuf>,
}

/// Start Kamailio on 127.0.0.1 with these `(user, password)` pairs (plus TLS if asked).
/// A port found free can be taken by another test's phone before Kamailio binds it
/// (Kamailio then stops: "Address already in use"); it is started again on other ports.
pub fn kamailio(dir: &Scratch, users: &[(&str, &str)], tls: bool) -> Registrar {
    for _ in 0..3 {
        if let Some(r) = kamailio_on_free_ports(dir, users, tls) {
            return r;
        }
    }
    panic!("Kamailio found its ports taken three times over");
}

fn kamailio_on_free_ports(dir: &Scratch, users: &[(&str, &str)], tls: bool) -> Option<Registrar> {
    let bin = require("kamailio", "kamailio");
    let port = free_port();
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kamailio/kamailio.cfg"),
    )
    .expect("read kamailio.cfg");
    let users: String = users
        .iter()
        .map(|(u, p)| {
            format!("    if ($fU == \"{u}\") {{\n        $var(pass) = \"{p}\";\n    }}\n")
        })
        .collect();
    let mut cfg = template
        .replace("SIP_PORT", &port.to_string())
        .replace("USERS\n", &users);
    let mut tls_port = None;
    let mut ca = None;
    let mut cmd = Command::new(bin);
    if tls {
        let modules = Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so");
        assert!(
            modules.is_file(),
            "Kamailio's TLS module is missing: install the Debian package `kamailio-tls-modules`"
        );
        let (cert, key) = self_signed(dir);
        let tls_cfg = dir.join("tls.cfg");
        std::fs::write(
            &tls_cfg,
            format!(
                "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n\
                 private_key = {}\ncertificate = {}\n",
                key.display(),
                cert.display()
            ),
        )
        .unwrap();
        let p = free_port();
        cfg = cfg
            .replace("TLS_PORT", &p.to_string())
            .replace("TLS_CONFIG", &tls_cfg.to_string_lossy());
        cmd.args(["-A", "WITH_TLS"]);
        tls_port = Some(p);
        ca = Some(cert);
    }
    let cfg_path = dir.join("kamailio.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let run = dir.join("kamailio-run");
    std::fs::create_dir_all(&run).unwrap();
    cmd.arg("-f")
        .arg(&cfg_path)
        .args(["-DD", "-E", "-Y"])
        .arg(&run)
        .arg("-w")
        .arg(dir.path());
    let peer = Peer::spawn("kamailio", cmd, dir.path());
    if !bound(port) {
        let log = peer.tail();
        assert!(
            log.contains("Address already in use"),
            "Kamailio never listened on UDP {port}:\n{log}"
        );
        return None;
    }
    Some(Registrar {
        peer,
        port,
        tls_port,
        ca,
    })
}

/// A self-signed certificate for 127.0.0.1, made with openssl.
fn self_signed(dir: &Scratch) -> (PathBuf, PathBuf) {
    let openssl = require("openssl", "openssl");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:127.0.0.1,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

impl Registrar {
    /// Its `host:port` for a transport.
    pub fn addr(&self, transport: Transport) -> String {
        match transport {
            Transport::Tls => format!(
                "127.0.0.1:{}",
                self.tls_port.expect("registrar started with TLS")
            ),
            _ => format!("127.0.0.1:{}", self.port),
        }
    }
}

/// An account of ours at the registrar `addr` (`host:port`).
pub fn account(
    addr: &str,
    name: &str,
    user: &str,
    password: &str,
    transport: Transport,
) -> Account {
    Account {
        name: name.into(),
        username: user.into(),
        domain: DOMAIN.into(),
        password: Secret::new(password),
        auth_username: None,
        realm: None,
        registrar: Some(addr.into()),
        transport,
        display_name: Some("Test Agent".into()),
        expires: 60,
        register: true,
    }
}

pub struct Baresip {
    pub peer: Peer,
    /// Where its `sndfile` module writes what it sends (`*-enc.wav`) and hears (`*-dec.wav`).
    pub recordings: PathBuf,
    ctrl: u16,
    /// Its SIP port.
    pub sip: u16,
}

/// Start baresip registered as `user` at the registrar; it answers every call itself,
/// plays `play` (a WAV) into it and records both directions.
pub fn baresip(dir: &Scratch, reg: &Registrar, user: &str, password: &str, play: &Path) -> Baresip {
    let account = format!(
        "<sip:{user}@{DOMAIN};transport=udp>;auth_pass={password};outbound=\"sip:127.0.0.1:{};transport=udp\";\
         regint=60;answermode=auto;audio_codecs=pcmu",
        reg.port
    );
    start_baresip(dir, &account, play, true)
}

/// Start baresip as a plain caller (no registration, no recording, quiet log) that
/// plays `play` into its calls: the benchmark's reference client.
pub fn baresip_caller(dir: &Scratch, play: &Path) -> Baresip {
    start_baresip(
        dir,
        "<sip:bench@127.0.0.1;transport=udp>;regint=0;audio_codecs=pcmu",
        play,
        false,
    )
}

fn start_baresip(dir: &Scratch, account: &str, play: &Path, record: bool) -> Baresip {
    let bin = require("baresip", "baresip");
    let home = dir.join("baresip");
    let recordings = dir.join("baresip-recordings");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&recordings).unwrap();
    let (sip, ctrl) = (free_port(), free_port());
    let filter = if record { "module sndfile.so\n" } else { "" };
    // No sound card: ALSA's "null" device takes what baresip would play.
    let config = format!(
        "poll_method epoll\nsip_listen 127.0.0.1:{sip}\naudio_player alsa,null\naudio_alert alsa,null\n\
         audio_source aufile,{play}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule alsa.so\n\
         module aufile.so\n{filter}module_tmp account.so\nmodule_app menu.so\nmodule_app ctrl_tcp.so\n\
         ctrl_tcp_listen 127.0.0.1:{ctrl}\nsnd_path {rec}\n",
        play = play.display(),
        rec = recordings.display()
    );
    std::fs::write(home.join("config"), config).unwrap();
    std::fs::write(home.join("accounts"), format!("{account}\n")).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-f").arg(&home);
    if record {
        // -v logs each received RFC 4733 event, which the DTMF test reads.
        cmd.arg("-v");
    }
    cmd.args(["-n", "127.0.0.1"]);
    let mut peer = Peer::spawn("baresip", cmd, dir.path());
    let ready = if account.contains("regint=0") {
        "baresip is ready"
    } else {
        "200 OK"
    };
    peer.wait_output(ready, Duration::from_secs(10));
    Baresip {
        peer,
        recordings,
        ctrl,
        sip,
    }
}

impl Baresip {
    /// Send one command to its `ctrl_tcp` interface (a JSON netstring).
    pub fn command(&self, command: &str, params: &str) {
        let body = format!("{{\"command\":\"{command}\",\"params\":\"{params}\",\"token\":\"t\"}}");
        let mut s =
            TcpStream::connect(("127.0.0.1", self.ctrl)).expect("connect to baresip ctrl_tcp");
        s.write_all(format!("{}:{},", body.len(), body).as_bytes())
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
    }

    /// The recording of what baresip heard (`*-dec.wav`), once it exists.
    pub fn heard(&self) -> PathBuf {
        self.recording("dec")
    }

    fn recording(&self, kind: &str) -> PathBuf {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let found = std::fs::read_dir(&self.recordings)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.to_string_lossy().ends_with(&format!("-{kind}.wav")));
            if let Some(p) = found {
                return p;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "baresip wrote no *-{kind}.wav in {}",
            self.recordings.display()
        );
    }
}

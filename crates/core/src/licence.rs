//! Licensing as the app uses it: activate a key, ask the status, deactivate.
//!
//! Without a licence the app is in demo mode (the demo line only); [`status`] says which
//! mode applies and why, without touching the network, and is cheap enough to ask before
//! every call. [`check`] does the same but first renews the lease when it is due (or
//! when work is stopped for want of the server); the shell calls it at start and about
//! once an hour. The licence state lives in the data folder's `licence/` part (see
//! `callhelper_licence::store` for the files and the threat model).
//!
//! Configuration:
//! - the licence server's address: the `--server` option of `activate`, else
//!   [`SERVER_ENV`] (`CALLHELPER_LICENCE_SERVER`), else the address saved at the last
//!   activation, else the one built in with `CALLHELPER_LICENCE_SERVER_DEFAULT` at
//!   compile time;
//! - the vendor's public key(s) that licence keys and leases must be signed with: set at
//!   compile time in `CALLHELPER_LICENCE_VENDOR_KEY` (hex, comma-separated for several).
//!   Debug builds also accept [`DEV_PUBLIC_KEY_ENV`] at run time, for development and
//!   tests against a local licence server; release builds ignore it. A build with no
//!   vendor key runs in demo mode only.

use callhelper_licence::time::{format_datetime, last_day, now};
use callhelper_licence::{Client, KeyError, LicenceDir, Licensing, Machine, PublicKey, Trust};
use callhelper_script::{Text, text};

use crate::Error;
use crate::paths::DataDir;

pub use callhelper_licence::{Deactivated, Licence, Licensed, NeedsServer, Status};

/// The environment variable with the licence server's address.
pub const SERVER_ENV: &str = "CALLHELPER_LICENCE_SERVER";
/// The environment variable with an extra trusted public key (debug builds only).
pub const DEV_PUBLIC_KEY_ENV: &str = "CALLHELPER_LICENCE_DEV_PUBLIC_KEY";

const VENDOR_KEYS: Option<&str> = option_env!("CALLHELPER_LICENCE_VENDOR_KEY");
const DEFAULT_SERVER: Option<&str> = option_env!("CALLHELPER_LICENCE_SERVER_DEFAULT");

/// The vendor keys this build trusts.
pub fn trust() -> Trust {
    let mut keys: Vec<PublicKey> = VENDOR_KEYS
        .unwrap_or("")
        .split(',')
        .filter_map(PublicKey::from_hex)
        .collect();
    if cfg!(debug_assertions) {
        if let Some(k) = std::env::var(DEV_PUBLIC_KEY_ENV)
            .ok()
            .as_deref()
            .and_then(PublicKey::from_hex)
        {
            keys.push(k);
        }
    }
    Trust::new(keys)
}

fn folder(data: &DataDir) -> Result<LicenceDir, Error> {
    Ok(LicenceDir::new(data.part("licence")?))
}

fn with_licensing<T>(
    data: &DataDir,
    f: impl FnOnce(&Licensing<'_>) -> Result<T, callhelper_licence::Error>,
) -> Result<T, Error> {
    let dir = folder(data)?;
    let trust = trust();
    let machine = Machine::this().map_err(error)?;
    f(&Licensing {
        dir: &dir,
        trust: &trust,
        machine: &machine,
    })
    .map_err(error)
}

/// The licence server to use: `explicit`, else the environment, else the saved one,
/// else the built-in default.
pub fn server_url(data: &DataDir, explicit: Option<&str>) -> Result<Option<String>, Error> {
    if let Some(s) = explicit.map(str::trim).filter(|s| !s.is_empty()) {
        return Ok(Some(s.to_owned()));
    }
    if let Some(s) = std::env::var(SERVER_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        return Ok(Some(s.trim().to_owned()));
    }
    if let Some(s) = folder(data)?.server().map_err(error)? {
        return Ok(Some(s));
    }
    Ok(DEFAULT_SERVER.map(str::to_owned))
}

fn client(data: &DataDir, explicit: Option<&str>) -> Result<Client, Error> {
    let url =
        server_url(data, explicit)?.ok_or_else(|| error(callhelper_licence::Error::NoServer))?;
    Client::new(&url).map_err(error)
}

/// The licence status now, from what is stored (no network).
pub fn status(data: &DataDir) -> Result<Status, Error> {
    with_licensing(data, |l| l.status(now()))
}

/// The result of [`check`].
#[derive(Debug)]
pub struct Checked {
    /// The status after the check.
    pub status: Status,
    /// Whether the licence server was asked.
    pub contacted: bool,
    /// Why asking the server failed, when it did.
    pub problem: Option<Error>,
}

/// The licence status, renewing the lease first when it is due or when work is stopped
/// for want of the server. An unreachable server is not an error: the status then says
/// how long the offline grace lasts.
pub fn check(data: &DataDir) -> Result<Checked, Error> {
    let st = status(data)?;
    if !st.wants_server() {
        return Ok(Checked {
            status: st,
            contacted: false,
            problem: None,
        });
    }
    let client = match client(data, None) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Checked {
                status: st,
                contacted: false,
                problem: Some(e),
            });
        }
    };
    let r = with_licensing(data, |l| l.refresh(&client, now()))?;
    Ok(Checked {
        status: r.status,
        contacted: r.contacted,
        problem: r.error.map(error),
    })
}

/// Activate a licence key on this computer with the licence server (`server`, or the
/// configured one), and remember that server for renewals.
pub fn activate(data: &DataDir, key: &str, server: Option<&str>) -> Result<Status, Error> {
    let client = client(data, server)?;
    let st = with_licensing(data, |l| l.activate(&client, key, now()))?;
    folder(data)?.set_server(client.url()).map_err(error)?;
    Ok(st)
}

/// Free this computer's seat and remove the licence from it. With `forget`, a server
/// that cannot be reached does not stop the removal (the seat then frees itself when
/// its lease ends).
pub fn deactivate(
    data: &DataDir,
    server: Option<&str>,
    forget: bool,
) -> Result<Deactivated, Error> {
    let client = match client(data, server) {
        Ok(c) => Some(c),
        Err(_) if forget => None,
        Err(e) => return Err(e),
    };
    with_licensing(data, |l| l.deactivate(client.as_ref(), forget))
}

/// A one-paragraph description of a status for the status screen and the command line.
pub fn describe(status: &Status) -> Text {
    let who = |l: &Licence| format!("{} ({})", l.customer, l.id);
    match status {
        Status::Demo => text!(
            "Demo mode: no licence is activated, only the demo line can be used. Activate a licence key to use the full product.";
            "Демо-режим: лицензия не активирована, доступна только демонстрационная линия. Активируйте лицензионный ключ, чтобы пользоваться всеми возможностями."
        ),
        Status::Active(l) => {
            let (w, seat, seats) = (who(&l.licence), l.seat, l.licence.seats);
            let (until, lease) = (last_day(l.licence.expires), format_datetime(l.lease_until));
            text!(
                "Licensed to {w}: seat {seat} of {seats}, valid through {until}. Works offline until {lease}.";
                "Лицензия: {w}, место {seat} из {seats}, действует по {until} включительно. Без связи с сервером работает до {lease}."
            )
        }
        Status::Grace(l) => {
            let (w, seat, seats) = (who(&l.licence), l.seat, l.licence.seats);
            let lease = format_datetime(l.lease_until);
            text!(
                "Licensed to {w} (seat {seat} of {seats}), but the licence server has not been reached for renewal. Working offline until {lease}; connect to the network before then.";
                "Лицензия: {w} (место {seat} из {seats}), но продлить её на сервере лицензий не удалось. Работа без связи возможна до {lease}; подключитесь к сети до этого времени."
            )
        }
        Status::Expired { licence } => {
            let (w, until) = (who(licence), format_datetime(licence.expires));
            text!(
                "The licence of {w} expired on {until}. Demo mode only; ask your vendor for a new key.";
                "Срок лицензии {w} истёк {until}. Доступен только демо-режим; запросите новый ключ у поставщика."
            )
        }
        Status::Revoked { licence } => {
            let w = who(licence);
            text!(
                "The licence of {w} has been revoked by the vendor. Demo mode only; contact your vendor.";
                "Лицензия {w} отозвана поставщиком. Доступен только демо-режим; свяжитесь с поставщиком."
            )
        }
        Status::NeedsServer { reason, .. } => needs_server(reason),
        _ => text!(
            "Licence status unknown to this version; update CallHelper.";
            "Состояние лицензии неизвестно этой версии; обновите CallHelper."
        ),
    }
}

fn needs_server(reason: &NeedsServer) -> Text {
    match reason {
        NeedsServer::NotActivated => text!(
            "The licence key is stored but its activation did not finish. Connect to the licence server (`callhelper licence status`) or activate the key again.";
            "Ключ сохранён, но активация не завершена. Подключитесь к серверу лицензий (`callhelper licence status`) или активируйте ключ ещё раз."
        ),
        NeedsServer::LeaseEnded { at } => {
            let at = format_datetime(*at);
            text!(
                "The licence could not be confirmed with the licence server since the offline period ended on {at}. Demo mode only until the server is reached; check the network.";
                "Лицензию не удалось подтвердить на сервере лицензий: срок работы без связи закончился {at}. До связи с сервером доступен только демо-режим; проверьте сеть."
            )
        }
        NeedsServer::ClockBehind { now, highest_seen } => {
            let (now, seen) = (format_datetime(*now), format_datetime(*highest_seen));
            text!(
                "This computer's clock ({now}) is more than a day behind a time already seen ({seen}). Set the correct date and time; the licence server must confirm the licence before work goes on.";
                "Часы компьютера ({now}) отстают более чем на сутки от уже встречавшегося времени ({seen}). Установите правильные дату и время; до продолжения работы лицензию должен подтвердить сервер лицензий."
            )
        }
        NeedsServer::LeaseInvalid => text!(
            "The licence lease on this computer was changed or belongs to another computer. Demo mode only until the licence server issues a new one; check the network.";
            "Аренда лицензии на этом компьютере изменена или принадлежит другому компьютеру. До выдачи новой сервером лицензий доступен только демо-режим; проверьте сеть."
        ),
        NeedsServer::StateInvalid => text!(
            "The licence records on this computer are missing or were changed. Demo mode only until the licence server confirms the licence; check the network.";
            "Служебные записи лицензии на этом компьютере отсутствуют или изменены. До подтверждения сервером лицензий доступен только демо-режим; проверьте сеть."
        ),
        NeedsServer::KeyInvalid => text!(
            "The stored licence key was changed and is no longer valid. Activate your licence key again.";
            "Сохранённый лицензионный ключ изменён и больше недействителен. Активируйте лицензионный ключ ещё раз."
        ),
        _ => text!(
            "The licence server must confirm the licence; check the network.";
            "Лицензию должен подтвердить сервер лицензий; проверьте сеть."
        ),
    }
}

fn key_error(e: &KeyError) -> Error {
    match e {
        KeyError::Malformed => Error::new(
            "licence.key_malformed",
            text!(
                "This is not a CallHelper licence key: it is cut short, mistyped or another text. Paste the whole key, starting with CHK1-.";
                "Это не лицензионный ключ CallHelper: он обрезан, набран с ошибкой или это другой текст. Вставьте ключ целиком, начиная с CHK1-."
            ),
        ),
        KeyError::BadSignature => Error::new(
            "licence.key_signature",
            text!(
                "The licence key's signature does not match: it was changed, mistyped, or not issued by the CallHelper vendor. Copy the key exactly as you received it.";
                "Подпись лицензионного ключа не совпадает: ключ изменён, набран с ошибкой или выдан не поставщиком CallHelper. Скопируйте ключ точно в том виде, в каком его получили."
            ),
        ),
        KeyError::UnsupportedVersion(v) => Error::new(
            "licence.key_version",
            text!(
                "The licence key has format version {v}, newer than this CallHelper understands. Update CallHelper.";
                "Лицензионный ключ имеет версию формата {v}, более новую, чем понимает эта версия CallHelper. Обновите CallHelper."
            ),
        ),
        KeyError::Expired { expires } => {
            let d = format_datetime(*expires);
            Error::new(
                "licence.expired",
                text!(
                    "The licence expired on {d}. Ask your vendor for a new key.";
                    "Срок действия лицензии истёк {d}. Запросите новый ключ у поставщика."
                ),
            )
        }
        other => {
            let detail = other.to_string();
            Error::new(
                "licence.key_invalid",
                text!(
                    "The licence key is signed but its content is invalid ({detail}). Contact your vendor.";
                    "Лицензионный ключ подписан, но его содержимое неверно ({detail}). Свяжитесь с поставщиком."
                ),
            )
        }
    }
}

/// The boundary error for a licence error, with a message in both languages.
pub fn error(e: callhelper_licence::Error) -> Error {
    use callhelper_licence::Error as E;
    match e {
        E::Key(k) => key_error(&k),
        E::Lease(_) | E::LeaseMismatch => Error::new(
            "licence.lease_invalid",
            text!(
                "The licence server's answer could not be verified (a wrong server or a damaged answer). Check the server address; try again.";
                "Ответ сервера лицензий не прошёл проверку (неверный сервер или повреждённый ответ). Проверьте адрес сервера и повторите попытку."
            ),
        ),
        E::Rejected => Error::new(
            "licence.rejected",
            text!(
                "The licence server does not accept this licence key. Check that the key and the server address are the ones your vendor gave you.";
                "Сервер лицензий не принимает этот ключ. Проверьте, что ключ и адрес сервера — те, что выдал поставщик."
            ),
        ),
        E::Revoked => Error::new(
            "licence.revoked",
            text!(
                "The licence has been revoked by the vendor. Contact your vendor.";
                "Лицензия отозвана поставщиком. Свяжитесь с поставщиком."
            ),
        ),
        E::SeatsExhausted { seats } => Error::new(
            "licence.seats_exhausted",
            text!(
                "All {seats} seats of this licence are in use. Deactivate the licence on a computer that no longer needs it (`callhelper licence deactivate` there), or buy more seats.";
                "Все места лицензии ({seats}) заняты. Деактивируйте лицензию на компьютере, где она больше не нужна (`callhelper licence deactivate` на нём), или приобретите дополнительные места."
            ),
        ),
        E::RateLimited { retry_after } => Error::new(
            "licence.rate_limited",
            text!(
                "The licence server received too many requests from this network. Try again in {retry_after} s.";
                "Сервер лицензий получил слишком много запросов из этой сети. Повторите через {retry_after} с."
            ),
        ),
        E::Busy => Error::new(
            "licence.server_busy",
            text!(
                "The licence server is busy. Try again in a minute.";
                "Сервер лицензий перегружен. Повторите через минуту."
            ),
        ),
        E::Unreachable { url, detail } => Error::new(
            "licence.server_unreachable",
            text!(
                "Cannot reach the licence server at {url} ({detail}). Check the network and the server address.";
                "Не удаётся связаться с сервером лицензий {url} ({detail}). Проверьте сеть и адрес сервера."
            ),
        ),
        E::Protocol(detail) => Error::new(
            "licence.server_protocol",
            text!(
                "The licence server answered something unexpected ({detail}). Check the server address.";
                "Сервер лицензий ответил неожиданно ({detail}). Проверьте адрес сервера."
            ),
        ),
        E::ClockSkew { local, server } => {
            let (l, s) = (format_datetime(local), format_datetime(server));
            Error::new(
                "licence.clock_skew",
                text!(
                    "This computer's clock ({l}) disagrees with the licence server's ({s}) by more than a day. Set the correct date and time, then check the licence again.";
                    "Часы компьютера ({l}) расходятся с часами сервера лицензий ({s}) более чем на сутки. Установите правильные дату и время и проверьте лицензию снова."
                ),
            )
        }
        E::NotActivated => Error::new(
            "licence.not_activated",
            text!(
                "No licence is activated on this computer.";
                "На этом компьютере лицензия не активирована."
            ),
        ),
        E::NoTrustedKey => Error::new(
            "licence.no_vendor_key",
            text!(
                "This build of CallHelper has no vendor key, so it cannot accept licence keys and runs in demo mode only. Use an official build.";
                "В этой сборке CallHelper нет ключа поставщика, поэтому она не принимает лицензионные ключи и работает только в демо-режиме. Используйте официальную сборку."
            ),
        ),
        E::NoServer => Error::new(
            "licence.no_server",
            text!(
                "No licence server is configured. Pass --server URL or set {SERVER_ENV}.";
                "Сервер лицензий не задан. Укажите --server URL или переменную {SERVER_ENV}."
            ),
        ),
        E::BadServerUrl(url) => Error::new(
            "licence.bad_server_url",
            text!(
                "The licence server address {url:?} is not an http:// or https:// URL.";
                "Адрес сервера лицензий {url:?} не является URL вида http:// или https://."
            ),
        ),
        E::MachineId(detail) => Error::new(
            "licence.machine_id",
            text!(
                "Cannot read this computer's machine id ({detail}); a licence cannot be bound to it.";
                "Не удаётся прочитать идентификатор компьютера ({detail}); привязать к нему лицензию невозможно."
            ),
        ),
        E::Io { path, source } => {
            let p = path.display();
            Error::new(
                "licence.io",
                text!(
                    "Cannot read or write {p}: {source}. Check the data folder's permissions and free space.";
                    "Не удаётся прочитать или записать {p}: {source}. Проверьте права на папку данных и свободное место."
                ),
            )
        }
        other => {
            let detail = other.to_string();
            Error::new(
                "licence.other",
                text!("Licence error: {detail}"; "Ошибка лицензии: {detail}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callhelper_licence::{LicenceId, Licensed};

    fn temp_data() -> (DataDir, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "callhelper-core-licence-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        (DataDir::at(&dir), dir)
    }

    #[test]
    fn no_licence_is_demo_mode() {
        let (data, dir) = temp_data();
        let st = status(&data).unwrap();
        assert_eq!(st, Status::Demo);
        assert!(st.is_demo());
        assert!(dir.join("licence").is_dir());
        let d = describe(&st);
        assert!(d.en.contains("Demo mode") && d.ru.contains("Демо-режим"));
        let e = deactivate(&data, Some("http://127.0.0.1:9"), false).unwrap_err();
        assert_eq!(e.code, "licence.not_activated");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_message_exists_in_both_languages() {
        let licence = Licence {
            id: LicenceId::from_random([1; 16]),
            customer: "ACME".into(),
            seats: 3,
            features: vec![],
            issued: 0,
            expires: 86_400 * 400,
        };
        let licensed = Licensed {
            licence: licence.clone(),
            seat: 2,
            renew_after: 100,
            lease_until: 200,
        };
        let statuses = [
            Status::Demo,
            Status::Active(licensed.clone()),
            Status::Grace(licensed),
            Status::Expired {
                licence: licence.clone(),
            },
            Status::Revoked {
                licence: licence.clone(),
            },
            Status::NeedsServer {
                licence: Some(licence),
                reason: NeedsServer::ClockBehind {
                    now: 0,
                    highest_seen: 1_000_000,
                },
            },
        ];
        for s in &statuses {
            let t = describe(s);
            assert!(
                !t.en.is_empty() && !t.ru.is_empty() && t.en != t.ru,
                "{s:?}"
            );
        }
        let errors = [
            callhelper_licence::Error::Key(KeyError::Malformed),
            callhelper_licence::Error::Key(KeyError::BadSignature),
            callhelper_licence::Error::Key(KeyError::Expired { expires: 0 }),
            callhelper_licence::Error::SeatsExhausted { seats: 5 },
            callhelper_licence::Error::Revoked,
            callhelper_licence::Error::Rejected,
            callhelper_licence::Error::NoServer,
            callhelper_licence::Error::ClockSkew {
                local: 0,
                server: 1,
            },
        ];
        let mut codes = std::collections::HashSet::new();
        for e in errors {
            let b = error(e);
            assert!(b.code.starts_with("licence."));
            assert!(codes.insert(b.code), "duplicate code {}", b.code);
            assert!(!b.message.en.is_empty() && !b.message.ru.is_empty());
        }
        assert!(
            error(callhelper_licence::Error::SeatsExhausted { seats: 5 })
                .message
                .ru
                .contains('5')
        );
    }

    #[test]
    fn server_address_order() {
        let (data, dir) = temp_data();
        assert_eq!(
            server_url(&data, Some(" http://a.example "))
                .unwrap()
                .as_deref(),
            Some("http://a.example")
        );
        if std::env::var_os(SERVER_ENV).is_none() {
            folder(&data)
                .unwrap()
                .set_server("http://saved.example")
                .unwrap();
            assert_eq!(
                server_url(&data, None).unwrap().as_deref(),
                Some("http://saved.example")
            );
        }
        let e = activate(&data, "CHK1-AAAAA", Some("ftp://x")).unwrap_err();
        assert_eq!(e.code, "licence.bad_server_url");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

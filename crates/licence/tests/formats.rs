//! Keys and leases: hostile input never panics and never verifies; valid documents
//! round-trip.

use callhelper_licence::key::{key_bytes, key_text};
use callhelper_licence::{Lease, Licence, LicenceId, LicenceKey, MachineHash, SecretKey, Trust};
use proptest::prelude::*;

fn signer() -> (SecretKey, Trust) {
    let sk = SecretKey::from_seed(&[3; 32]);
    let trust = Trust::new([sk.public()]);
    (sk, trust)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_is_refused_without_panic(s in "\\PC{0,600}") {
        let (_, trust) = signer();
        prop_assert!(LicenceKey::parse(&s, &trust).is_err());
        prop_assert!(Lease::parse(&s, &trust).is_err());
    }

    #[test]
    fn arbitrary_bytes_in_key_form_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let (_, trust) = signer();
        prop_assert!(LicenceKey::parse(&key_text(&bytes), &trust).is_err());
    }

    #[test]
    fn valid_licences_round_trip(
        customer in "[A-Za-zА-Яа-я0-9][A-Za-zА-Яа-я0-9 .,«»\"-]{0,60}[A-Za-zА-Яа-я0-9]",
        seats in 1u32..=100_000,
        features in proptest::collection::btree_set("[a-z0-9_.-]{1,20}", 0..8),
        issued in 0u64..4_000_000_000,
        term in 1u64..1_000_000_000,
        id in any::<[u8; 16]>(),
    ) {
        let (sk, trust) = signer();
        let licence = Licence {
            id: LicenceId::from_random(id),
            customer,
            seats,
            features: features.into_iter().collect(),
            issued,
            expires: issued + term,
        };
        let text = LicenceKey::issue(&licence, &sk).unwrap();
        let key = LicenceKey::parse(&text, &trust).unwrap();
        prop_assert_eq!(key.licence(), &licence);
        prop_assert!(key.check_term(issued).is_ok());
        prop_assert!(key.check_term(issued + term).is_err());
        // Any single flipped bit anywhere is refused.
        let bytes = key_bytes(&text).unwrap();
        let i = (id[0] as usize * 7 + seats as usize) % bytes.len();
        let mut b = bytes.clone();
        b[i] ^= 1 << (id[1] % 8);
        prop_assert!(LicenceKey::parse(&key_text(&b), &trust).is_err());
    }
}

#[test]
fn lease_round_trip_and_machine_binding() {
    let (sk, trust) = signer();
    let lease = Lease {
        licence: LicenceId::from_random([1; 16]),
        machine: MachineHash::of_machine_id("x"),
        seat: 1,
        issued: 100,
        renew_after: 200,
        valid_until: 300,
    };
    let text = lease.sign(&sk).unwrap();
    assert_eq!(Lease::parse(&text, &trust).unwrap(), lease);
    // Not a key, whatever the trust.
    assert!(LicenceKey::parse(&text, &trust).is_err());
}

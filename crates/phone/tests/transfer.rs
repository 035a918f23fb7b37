//! Transfers between instances of our own engine: blind (the agent sends the client on
//! to an expert) and attended (the agent consults the expert first, then joins them).

use callhelper_phone::{
    AnswerOptions, AudioIo, CallId, CallOptions, CallState, EndReason, Event, TransferProgress,
    Transport,
};

use crate::ours::{connect, hang_up, party};
use crate::support::audio::speech;
use crate::support::sip_peers::{account, kamailio};
use crate::support::{Party, SEC, Scratch, loopback_config};

/// Answer the next incoming call and wait until it is connected.
fn answer_next(p: &mut Party) -> CallId {
    let call = p.wait_incoming(10 * SEC);
    p.phone.answer(call, AnswerOptions::default()).unwrap();
    p.wait_state(call, |s| *s == CallState::Connected, 5 * SEC);
    call
}

fn ended_as(p: &mut Party, call: CallId) -> EndReason {
    match p.reached(call, |s| s.is_ended(), 10 * SEC) {
        CallState::Ended { reason } => reason,
        other => unreachable!("{other:?}"),
    }
}

/// The call a party's engine placed by itself (on a REFER), besides `known`.
fn placed_on_refer(p: &Party, known: CallId) -> CallId {
    p.seen
        .iter()
        .find_map(|e| match e {
            Event::Outgoing { call, .. } if *call != known => Some(*call),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{} placed no call on the transfer: {:?}", p.name, p.seen))
}

#[test]
fn blind_transfer_to_a_third_party() {
    let dir = Scratch::new("transfer-blind");
    let mut client = party(&dir, "client", Some(speech()));
    let mut agent = party(&dir, "agent", Some(speech()));
    let mut expert = party(&dir, "expert", Some(speech()));
    let (client_leg, agent_leg) = connect(&mut client, &mut agent, CallOptions::default());
    agent
        .phone
        .transfer(agent_leg, &expert.uri("expert"))
        .unwrap();
    agent.wait_state(agent_leg, |s| *s == CallState::Transferring, 2 * SEC);
    let expert_leg = answer_next(&mut expert);
    agent.wait("transfer success", 10 * SEC, |e| {
        matches!(
            e,
            Event::Transfer {
                progress: TransferProgress::Succeeded,
                ..
            }
        )
        .then_some(())
    });
    assert_eq!(ended_as(&mut agent, agent_leg), EndReason::Transferred);
    assert_eq!(ended_as(&mut client, client_leg), EndReason::Transferred);
    // The client's engine placed the new leg itself, and it is connected to the expert.
    let new_leg = placed_on_refer(&client, client_leg);
    assert!(
        client.states(new_leg).contains(&"connected"),
        "{:?}",
        client.seen
    );
    hang_up(&mut expert, expert_leg);
    client.wait_state(new_leg, |s| s.is_ended(), 5 * SEC);
}

/// An attended transfer joins two calls by their dialogs (REFER with Replaces to the
/// expert's address of record), so the three parties are registered at a real registrar
/// as they would be at work.
#[test]
fn attended_transfer_to_a_third_party() {
    let dir = Scratch::new("transfer-attended");
    let users = [
        ("client", "c-pass"),
        ("agent", "a-pass"),
        ("expert", "e-pass"),
    ];
    let reg = kamailio(&dir, &users, false);
    let registered = |name: &'static str, password: &str| {
        let audio = AudioIo::Files {
            play: Some(speech()),
            speaker: None,
        };
        let mut c = loopback_config(&dir.join(name), audio);
        c.accounts.push(account(
            &reg.addr(Transport::Udp),
            name,
            name,
            password,
            Transport::Udp,
        ));
        let mut p = Party::start(name, c);
        p.wait("registration", 10 * SEC, |e| {
            matches!(
                e,
                Event::Registration {
                    state: callhelper_phone::RegistrationState::Ok,
                    ..
                }
            )
            .then_some(())
        });
        p
    };
    let mut client = registered("client", "c-pass");
    let mut agent = registered("agent", "a-pass");
    let mut expert = registered("expert", "e-pass");

    let client_leg = client.phone.call("agent", CallOptions::default()).unwrap();
    let agent_leg = answer_next(&mut agent);
    client.wait_state(client_leg, |s| *s == CallState::Connected, 5 * SEC);
    // The agent holds the client and consults the expert.
    agent.phone.hold(agent_leg).unwrap();
    agent.wait_state(agent_leg, |s| matches!(s, CallState::OnHold(_)), 5 * SEC);
    let consult = agent.phone.call("expert", CallOptions::default()).unwrap();
    let expert_consult = answer_next(&mut expert);
    agent.wait_state(consult, |s| *s == CallState::Connected, 5 * SEC);
    // Then joins them: the client calls the expert with Replaces, and the expert's engine
    // swaps the consultation for the client without ringing.
    agent.phone.transfer_attended(agent_leg, consult).unwrap();
    let expert_client = expert.wait_incoming(10 * SEC);
    expert.wait_state(expert_client, |s| *s == CallState::Connected, 10 * SEC);
    ended_as(&mut expert, expert_consult);
    assert_eq!(ended_as(&mut agent, agent_leg), EndReason::Transferred);
    ended_as(&mut agent, consult);
    assert_eq!(ended_as(&mut client, client_leg), EndReason::Transferred);
    let new_leg = placed_on_refer(&client, client_leg);
    client.reached(new_leg, |s| *s == CallState::Connected, 5 * SEC);
    hang_up(&mut expert, expert_client);
    client.wait_state(new_leg, |s| s.is_ended(), 5 * SEC);
}

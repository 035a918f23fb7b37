//! `crm-fakes`: run the local amoCRM, Bitrix24 and webhook servers by hand, to try the app
//! or the command line against them.
//!
//! Usage: `crm-fakes [--faults PER_MILLE] [--seed N]`. Prints each server's URL and the
//! credentials to connect with, then serves until interrupted.

use callhelper_crm_fakes::{
    AmoConfig, AmoServer, BitrixConfig, BitrixServer, FaultPlan, WebhookConfig, WebhookServer,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut plan = FaultPlan::default();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--faults", Some(v)) => plan.per_mille = v.min(1000) as u32,
            ("--seed", Some(v)) => plan.seed = v,
            _ => {
                eprintln!("usage: crm-fakes [--faults PER_MILLE] [--seed N]");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let amo_cfg = AmoConfig {
        long_lived_token: Some("amo-long-lived-token".into()),
        faults: plan.clone(),
        ..AmoConfig::default()
    };
    let (Ok(amo), Ok(b24), Ok(hook)) = (
        AmoServer::start(amo_cfg),
        BitrixServer::start(BitrixConfig {
            faults: plan.clone(),
            ..BitrixConfig::default()
        }),
        WebhookServer::start(WebhookConfig {
            faults: plan,
            ..WebhookConfig::default()
        }),
    ) else {
        eprintln!("crm-fakes: cannot listen on 127.0.0.1");
        std::process::exit(1);
    };
    println!(
        "amoCRM:   {}  (long-lived token: amo-long-lived-token)",
        amo.url()
    );
    println!("Bitrix24: {}", b24.webhook_url());
    println!(
        "webhook:  {}  (secret: whsec-fake-shared-secret)",
        hook.url()
    );
    loop {
        std::thread::park();
    }
}

//! The default bundle, compiled once per fuzzing process.
#![allow(dead_code)]
use policy_engine::{Caller, Engine};
use std::sync::OnceLock;

pub fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        Engine::from_source(include_str!("../../policies/default.yaml")).expect("default bundle")
    })
}

pub fn caller(group: &str) -> Caller {
    Caller {
        issuer: "fuzz".into(),
        principal: "fuzz".into(),
        groups: vec![group.into()],
        claims: Default::default(),
        expires_at: u64::MAX,
    }
}

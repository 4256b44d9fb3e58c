//! Control-plane hot paths: the `QB-Token` check every REST request makes
//! (`ControlPlane::authenticate` over a SQLite store in a temporary directory), the
//! `POST /session.json` signature check, and TURN REST credential minting.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use control_api::domain::ice::{mint, IceConfig};
use control_api::domain::model::UserId;
use control_api::domain::sessions::SessionRequest;
use control_api::domain::signature;
use control_api::{open_store, ControlConfig, ControlPlane, ManualClock};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use time::OffsetDateTime;

fn start_time() -> OffsetDateTime {
    time::macros::datetime!(2026-11-25 12:00:00 UTC)
}

/// The signed `POST /session.json` parameters, as the SDK sends them.
fn session_params(app_id: i64, auth_key: &str, secret: &str) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = vec![
        ("application_id".into(), app_id.to_string()),
        ("auth_key".into(), auth_key.into()),
        ("nonce".into(), "4711".into()),
        (
            "timestamp".into(),
            start_time().unix_timestamp().to_string(),
        ),
    ];
    let signed = signature::signed_string(&params);
    params.push(("signature".into(), signature::sign_sha1(secret, &signed)));
    params
}

fn session_token(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (control, token) = rt.block_on(async {
        let store = Arc::new(
            open_store("sqlite", dir.path())
                .await
                .expect("sqlite store"),
        );
        let clock = Arc::new(ManualClock::new(start_time()));
        let control = ControlPlane::new(store, clock, ControlConfig::default());
        let (app, _) = control.ensure_default_app().await.expect("default app");
        let req = SessionRequest {
            params: session_params(app.id.0, &app.auth_key, &app.auth_secret),
        };
        let (session, _) = control.create_session(&req).await.expect("session");
        (control, session.token)
    });
    let mut g = c.benchmark_group("control/session_token");
    g.throughput(Throughput::Elements(1));
    // The clock stands still, so the session's expiry never needs sliding: the read path.
    g.bench_function("authenticate_sqlite", |b| {
        b.iter(|| {
            rt.block_on(control.authenticate(black_box(&token)))
                .expect("valid token")
        })
    });
    g.bench_function("authenticate_unknown_token_sqlite", |b| {
        b.iter(|| {
            rt.block_on(control.authenticate(black_box("0123456789abcdef0123456789abcdef01234567")))
                .expect_err("unknown token")
        })
    });
    g.finish();
}

fn session_signature(c: &mut Criterion) {
    let secret = "Wd5ECwTvnpC9zVJ";
    let params = session_params(1, "uW2PkWyD8cYyxNW", secret);
    let (_, sig) = params.last().cloned().expect("signature");
    let mut g = c.benchmark_group("control/session_signature");
    g.throughput(Throughput::Elements(1));
    g.bench_function("signed_string_and_verify_sha1", |b| {
        b.iter(|| {
            let signed = signature::signed_string(black_box(&params));
            assert!(signature::verify(secret, &signed, &sig));
        })
    });
    g.finish();
}

fn turn_credentials(c: &mut Criterion) {
    let config = IceConfig {
        secret: b"turn-shared-secret".to_vec(),
        stun_urls: vec!["stun:127.0.0.1:3478".into()],
        turn_urls: vec![
            "turn:127.0.0.1:3478?transport=udp".into(),
            "turn:127.0.0.1:3478?transport=tcp".into(),
        ],
        credential_ttl: Duration::from_secs(86_400),
    };
    let mut g = c.benchmark_group("control/turn_rest_credentials");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mint_hmac_sha1", |b| {
        b.iter(|| mint(&config, black_box(UserId(12345)), start_time()))
    });
    g.finish();
}

criterion_group!(benches, session_token, session_signature, turn_credentials);
criterion_main!(benches);

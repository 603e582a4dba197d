//! The host's per-request cost, split into its phases: open + verify the
//! request, call the policy, mint + sign (+ seal) the response; and the whole
//! path, plaintext and encrypted. Uses the example token-table policy (build it
//! with scripts/build-policies.sh first).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use nkeys::KeyPair;
use nkeys::XKey;

use nats_callout::authz::Verdict;
use nats_callout::config::DenyMode;
use nats_callout::metrics::Phases;
use nats_callout::protocol::claims::ConnectOpts;
use nats_callout::protocol::jwt::{FastSigner, Signer};
use nats_callout::protocol::xkey::SealedBoxes;
use nats_callout::serve::Registry;
use nats_callout::testing::{FakeServer, token_table_registry};

/// The service as `serve` builds it, with the token-table policy.
fn registry(runtime: &tokio::runtime::Runtime, with_xkey: bool) -> Registry {
    let xkey = with_xkey.then(|| {
        Arc::new(SealedBoxes::from_seed(&XKey::new().seed().expect("seed")).expect("xkey"))
    });
    runtime.block_on(token_table_registry(xkey, DenyMode::Error))
}

fn token_request(server: &FakeServer, registry: &Registry) -> (Vec<u8>, Option<String>) {
    let opts = ConnectOpts {
        auth_token: Some("s3cr3t".into()),
        protocol: 1,
        ..ConnectOpts::default()
    };
    let own_xkey = registry.verifier().xkey();
    let request = server.request(opts, own_xkey.is_some());
    let service_xkey = own_xkey.map(|x| XKey::from_public_key(x.public_key()).expect("xkey"));
    let issuer = registry.accounts().next().expect("one binding");
    server.encode(issuer, request, service_xkey.as_ref())
}

fn phases(c: &mut Criterion) {
    let server = FakeServer::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (label, with_xkey) in [("plain", false), ("xkey", true)] {
        let registry = registry(&runtime, with_xkey);
        let (payload, header) = token_request(&server, &registry);
        let mut group = c.benchmark_group(label);
        group.bench_function("open_verify", |b| {
            b.iter(|| registry.open(&payload, header.as_deref()).expect("opens"))
        });
        let (request, binding) = registry.open(&payload, header.as_deref()).expect("opens");
        group.bench_function("policy_call", |b| {
            b.iter(|| runtime.block_on(binding.decide(&request, &mut Phases::default())))
        });
        let verdict = runtime.block_on(binding.decide(&request, &mut Phases::default()));
        assert!(matches!(verdict, Verdict::Allow(_)), "{verdict:?}");
        let seal = registry
            .verifier()
            .xkey()
            .zip(request.server_xkey.as_deref());
        group.bench_function("mint_sign", |b| {
            b.iter(|| {
                binding
                    .respond(&request, &mut verdict.clone(), seal)
                    .expect("a reply")
            })
        });
        group.bench_function("end_to_end", |b| {
            b.iter(|| {
                runtime
                    .block_on(registry.handle(&payload, header.as_deref()))
                    .expect("answered")
                    .reply
                    .expect("a reply")
            })
        });
        group.finish();
    }
}

/// The signatures every request needs whatever the host does: verify the
/// server's request, sign the user JWT, sign the response.
fn ed25519_floor(c: &mut Criterion) {
    let server = KeyPair::new_server();
    let issuer = FastSigner::new(&KeyPair::new_account()).expect("signer");
    let request = vec![b'r'; 1100];
    let user_jwt = vec![b'u'; 600];
    let response = vec![b'a'; 1000];
    let signature = server.sign(&request).expect("sign");
    let server_public = KeyPair::from_public_key(&server.public_key()).expect("public key");
    c.bench_function("floor/verify_plus_two_signs", |b| {
        b.iter(|| {
            server_public
                .verify(&request, &signature)
                .expect("verifies");
            (
                issuer.sign(&user_jwt).expect("sign"),
                issuer.sign(&response).expect("sign"),
            )
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = phases, ed25519_floor
}
criterion_main!(benches);

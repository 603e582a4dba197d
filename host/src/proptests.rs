//! Property-based tests of the two places where untrusted input reaches the
//! host: requests from the network (`protocol/verify.rs`) and grants from a
//! policy (`authz/rules.rs`, then `protocol/mint.rs`).
//!
//! Run them (release, like every test here):
//!
//! ```sh
//! cargo test --release -p nats-callout --lib proptests     # default: ~3 s
//! PROPTEST_CASES=20000 cargo test --release -p nats-callout --lib proptests    # ~25 s
//! PROPTEST_CASES=200000 cargo test --release -p nats-callout --lib proptests   # ~3 min
//! ```
//!
//! (Times on this 2-core machine.) `PROPTEST_CASES` sets the number of cases
//! of every property but the size one (proptest reads it itself); without it
//! each property runs the number given to [`config`]. Every run draws new
//! inputs; `PROPTEST_RNG_SEED=<n>` replays one. A failure is shrunk to a
//! minimal input, which proptest prints.
//!
//! The grant properties check every JWT the host mints with an oracle,
//! [`nats_refusal`], that encodes what nats-io/jwt v2 (`Decode`,
//! `UserClaims.Validate`: `types.go`, `user_claims.go`, `decoder.go`,
//! `header.go`) and nats-server's callout path (`auth_callout.go`
//! `processReply`, `client.go` `setPermissions`/`splitSubjectQueue`,
//! `sublist.go` `IsValidSubject`, `jwt.go` `validateTimes`) accept, written
//! from their source, independently of `protocol/jwt.rs` and `authz/rules.rs`.
//!
//! "Never allocates unboundedly" is measured: this test binary's global
//! allocator counts the live bytes of each thread, and [`peak_during`] reads
//! the high-water mark of one call.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::{KeyPair, KeyPairType, XKey};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestRunner;
use serde_json::Value;

use crate::authz::rules::{
    Accounts, CheckedGrant, GrantRules, MAX_NAME_BYTES, MAX_SUBJECT_BYTES, MAX_SUBJECTS, MAX_TAGS,
};
use crate::policy::wit::nats::callout::types::ResponsePermission;
use crate::policy::wit::{ConnectionType, Grant, Limits, Permission, TimeWindow};
use crate::protocol::claims::{
    AuthorizationRequest, ClientInfo, ClientTls, ConnectOpts, REQUEST_AUDIENCE, ServerId,
};
use crate::protocol::jwt::{self, Claims, FastSigner, MAX_TOKEN_BYTES};
use crate::protocol::mint::{self, AccountKey, ResponseError};
use crate::protocol::verify::{DropReason, VerifiedRequest, unix_now};
use crate::testing::{FakeServer, FakeService};

// ---------------------------------------------------------------------------
// Harness: case counts and allocation measurement.

/// `cases` cases; the `proptest!` macro lets `PROPTEST_CASES` override it.
/// No regression files: failures are reported, and fixed ones belong in the
/// unit tests of the module that fixes them.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The system allocator, counting each thread's live bytes and their peak.
struct CountingAllocator;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE_BYTES.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are
// const-initialized thread locals without destructors, so counting never
// allocates or re-enters the allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the most bytes it held at once
/// (on this thread, above what was live before).
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE_BYTES.with(Cell::get);
    PEAK_BYTES.with(|peak| peak.set(base));
    let out = f();
    let peak = PEAK_BYTES.with(Cell::get) - base;
    (out, usize::try_from(peak).unwrap_or(0))
}

/// What opening a request of `len` bytes may hold at once: a few copies of
/// the input (bytes, decrypted text, decoded base64, parsed claims), and a
/// constant that covers the cache of server keys growing (it holds at most
/// 1024 keys of ~220 bytes; a rehash briefly holds two tables).
fn allocation_bound(len: usize) -> usize {
    8 * len + 1024 * 1024
}

#[test]
fn the_allocation_counter_sees_allocations() {
    let (buffer, peak) = peak_during(|| vec![1u8; 1 << 20]);
    assert_eq!(buffer.len(), 1 << 20);
    assert!(peak >= 1 << 20, "peak {peak}");
}

// ---------------------------------------------------------------------------
// Text that policies and clients control.

/// Characters that break naive parsers and log lines, and any other.
fn odd_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::char::range('a', 'z'),
        3 => any::<char>(),
        2 => select(vec![
            '\0', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{1b}', '\u{7f}', '\u{85}', '\u{a0}',
            '\u{2028}', '\u{202e}', '\u{feff}', '"', '\\', ' ', '.', '*', '>', '/', ':', 'A',
            'é', 'İ', '日', '😀',
        ]),
    ]
}

/// Short text with control characters, whitespace, quotes and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    vec(odd_char(), 0..16).prop_map(String::from_iter)
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    option::of(text())
}

fn text_list() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..3)
}

// ---------------------------------------------------------------------------
// Request path: fixtures.

/// [`FakeService`] opening requests, with a memory bound.
trait BoundedOpen {
    fn open_bounded(
        &self,
        encrypted: bool,
        payload: &[u8],
        header: Option<&str>,
    ) -> Result<Result<VerifiedRequest, DropReason>, TestCaseError>;
}

impl BoundedOpen for FakeService {
    /// [`FakeService::open`] (verify, then route), failing the case if it
    /// held more memory than [`allocation_bound`] allows.
    fn open_bounded(
        &self,
        encrypted: bool,
        payload: &[u8],
        header: Option<&str>,
    ) -> Result<Result<VerifiedRequest, DropReason>, TestCaseError> {
        let (result, peak) = peak_during(|| FakeService::open(self, encrypted, payload, header));
        prop_assert!(
            peak <= allocation_bound(payload.len()),
            "opening {} bytes held {peak} bytes at once",
            payload.len()
        );
        Ok(result)
    }
}

/// What goes on the wire for `token`: the token itself, or the token sealed
/// by `server` to the service's key with the matching `Nats-Server-Xkey`
/// header (as `FakeServer::encode` does for the claims it makes itself).
fn wire(server: &FakeServer, token: &str, sealed_to: Option<&XKey>) -> (Vec<u8>, Option<String>) {
    match sealed_to {
        None => (token.as_bytes().to_vec(), None),
        Some(service) => (
            server.xkey.seal(token.as_bytes(), service).unwrap(),
            Some(server.xkey.public_key()),
        ),
    }
}

/// A JWT around `payload`, JSON text of any shape, signed by `key`.
/// `jwt::encode` only signs well-typed claims; mutated ones need this.
fn sign_raw(payload: &str, key: &KeyPair) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = key.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

// ---------------------------------------------------------------------------
// Request path: strategies.

/// Everything a server may say about a client, with arbitrary text in every
/// string, absent optional fields and extreme numbers. The identity fields
/// (`server_id.id`, `server_id.xkey`, `user_nkey`) are filled in by the test.
fn request_body() -> impl Strategy<Value = AuthorizationRequest> {
    let server_id = (text(), text(), opt_text(), opt_text(), text_list()).prop_map(
        |(name, host, version, cluster, tags)| ServerId {
            name,
            host,
            id: String::new(),
            version,
            cluster,
            tags,
            xkey: None,
        },
    );
    let client_info = (
        opt_text(),
        option::of(any::<u64>()),
        opt_text(),
        opt_text(),
        text_list(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
    )
        .prop_map(
            |(host, id, user, name, tags, name_tag, kind, client_type, mqtt_id, nonce)| {
                ClientInfo {
                    host,
                    id,
                    user,
                    name,
                    tags,
                    name_tag,
                    kind,
                    client_type,
                    mqtt_id,
                    nonce,
                }
            },
        );
    let connect_opts = (
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        any::<i32>(),
    )
        .prop_map(
            |(jwt, nkey, sig, auth_token, user, pass, name, lang, version, protocol)| ConnectOpts {
                jwt,
                nkey,
                sig,
                auth_token,
                user,
                pass,
                name,
                lang,
                version,
                protocol,
            },
        );
    let client_tls = option::of(
        (opt_text(), opt_text(), text_list(), vec(text_list(), 0..3)).prop_map(
            |(version, cipher, certs, verified_chains)| ClientTls {
                version,
                cipher,
                certs,
                verified_chains,
            },
        ),
    );
    let kind = select(vec!["", "authorization_request"]).prop_map(String::from);
    (
        server_id,
        client_info,
        connect_opts,
        client_tls,
        kind,
        any::<u32>(),
    )
        .prop_map(
            |(server_id, client_info, connect_opts, client_tls, kind, version)| {
                AuthorizationRequest {
                    server_id,
                    user_nkey: String::new(),
                    client_info,
                    connect_opts,
                    client_tls,
                    kind,
                    version,
                }
            },
        )
}

/// Standard claims that do not make a request invalid: any `iat`, `nbf`,
/// `name` and `jti`, and an `exp` that is fresh, far, absent or not positive
/// (which the server and the host ignore).
#[derive(Debug, Clone)]
struct HarmlessClaims {
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    name: Option<String>,
}

fn harmless_claims() -> impl Strategy<Value = HarmlessClaims> {
    let exp = prop_oneof![
        Just(None),
        (0i64..3600).prop_map(|ahead| Some(unix_now() + ahead)),
        Just(Some(i64::MAX)),
        (i64::MIN..=0).prop_map(Some),
    ];
    (
        exp,
        option::of(any::<i64>()),
        option::of(any::<i64>()),
        opt_text(),
    )
        .prop_map(|(exp, iat, nbf, name)| HarmlessClaims {
            exp,
            iat,
            nbf,
            name,
        })
}

/// The `Nats-Server-Xkey` header a message arrives with.
#[derive(Debug, Clone)]
enum XkeyHeader {
    Missing,
    /// The sending server's curve key: the only right one for a sealed request.
    Server,
    /// Another server's curve key.
    OtherCurve,
    /// A valid public key of the wrong kind.
    User,
    Text(String),
}

fn xkey_header() -> impl Strategy<Value = XkeyHeader> {
    prop_oneof![
        1 => Just(XkeyHeader::Missing),
        4 => Just(XkeyHeader::Server),
        1 => Just(XkeyHeader::OtherCurve),
        1 => Just(XkeyHeader::User),
        1 => text().prop_map(XkeyHeader::Text),
    ]
}

impl XkeyHeader {
    fn value(&self, server: &FakeServer) -> Option<String> {
        match self {
            XkeyHeader::Missing => None,
            XkeyHeader::Server => Some(server.xkey.public_key()),
            XkeyHeader::OtherCurve => Some(XKey::new().public_key()),
            XkeyHeader::User => Some(KeyPair::new_user().public_key()),
            XkeyHeader::Text(text) => Some(text.clone()),
        }
    }
}

/// Damage to a payload on the wire.
#[derive(Debug, Clone)]
enum Tamper {
    /// Keep only this fraction (in 1/1000) of the bytes.
    Truncate(u16),
    /// Flip one bit of the byte at this fraction (in 1/1000) of the length.
    FlipBit(u16, u8),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (0u16..1000).prop_map(Tamper::Truncate),
        (0u16..1000, 0u8..8).prop_map(|(at, bit)| Tamper::FlipBit(at, bit)),
    ]
}

impl Tamper {
    fn apply(&self, payload: &mut Vec<u8>) {
        let at = |fraction: u16| payload.len() * usize::from(fraction) / 1000;
        match *self {
            Tamper::Truncate(fraction) => payload.truncate(at(fraction)),
            Tamper::FlipBit(fraction, bit) => {
                let index = at(fraction);
                payload[index] ^= 1 << bit;
            }
        }
    }
}

/// One change to a genuine request's claims that must get it dropped.
#[derive(Debug, Clone)]
enum Breakage {
    /// `iss` is not the key that signed the token.
    Issuer(String),
    /// Signed (validly) by another server key than `server_id.id`.
    ForeignSigner,
    /// `aud` other than "nats-authorization-request", or none.
    Audience(Option<String>),
    /// `sub` is not the service's issuer, or none.
    Subject(Option<String>),
    /// `exp` this many seconds ago (more than the 2 s leeway).
    Expired(i64),
    /// `user_nkey` is not a user public key, or none.
    UserNkey(Option<String>),
    /// `server_id.id` is not the signer, or none.
    ServerId(Option<String>),
    /// `nats.type` is another non-empty kind.
    Kind(String),
    /// `server_id.xkey` does not match the header (breaks sealed requests only).
    ServerXkey(Option<String>),
    /// A required member removed (JSON pointer).
    Remove(&'static str),
    /// A member replaced by a value of the wrong type (JSON pointer, raw JSON).
    WrongType(&'static str, &'static str),
}

/// A key that is not a user key, or text.
fn not_a_user_key() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(KeyPair::new_account().public_key())),
        Just(Some(KeyPair::new_server().public_key())),
        Just(Some(XKey::new().public_key())),
        text().prop_map(Some),
    ]
}

fn breakage() -> impl Strategy<Value = Breakage> {
    const REQUIRED: &[&str] = &[
        "/iss",
        "/aud",
        "/sub",
        "/nats",
        "/nats/user_nkey",
        "/nats/server_id",
        "/nats/server_id/id",
    ];
    prop_oneof![
        1 => prop_oneof![text(), Just(KeyPair::new_server().public_key()), Just(KeyPair::new_account().public_key())]
            .prop_map(Breakage::Issuer),
        1 => Just(Breakage::ForeignSigner),
        1 => opt_text()
            .prop_filter("a wrong audience", |aud| aud.as_deref() != Some(REQUEST_AUDIENCE))
            .prop_map(Breakage::Audience),
        1 => prop_oneof![opt_text(), Just(Some(KeyPair::new_account().public_key()))].prop_map(Breakage::Subject),
        1 => (3i64..1_000_000_000).prop_map(Breakage::Expired),
        1 => not_a_user_key().prop_map(Breakage::UserNkey),
        1 => prop_oneof![opt_text(), Just(Some(KeyPair::new_server().public_key()))].prop_map(Breakage::ServerId),
        1 => text()
            .prop_filter("another kind", |kind| !kind.is_empty() && kind != "authorization_request")
            .prop_map(Breakage::Kind),
        1 => prop_oneof![opt_text(), Just(Some(XKey::new().public_key()))].prop_map(Breakage::ServerXkey),
        1 => select(REQUIRED).prop_map(Breakage::Remove),
        3 => wrong_type().prop_map(|(pointer, raw)| Breakage::WrongType(pointer, raw)),
    ]
}

/// A member of the request and a JSON value of a type it cannot take.
fn wrong_type() -> impl Strategy<Value = (&'static str, &'static str)> {
    const STRINGS: &[&str] = &[
        "/aud",
        "/sub",
        "/iss",
        "/jti",
        "/name",
        "/nats/type",
        "/nats/user_nkey",
        "/nats/server_id/name",
        "/nats/server_id/host",
        "/nats/server_id/id",
        "/nats/server_id/version",
        "/nats/server_id/cluster",
        "/nats/server_id/xkey",
        "/nats/client_info/host",
        "/nats/client_info/user",
        "/nats/client_info/name",
        "/nats/client_info/name_tag",
        "/nats/client_info/kind",
        "/nats/client_info/type",
        "/nats/client_info/mqtt_id",
        "/nats/client_info/nonce",
        "/nats/connect_opts/jwt",
        "/nats/connect_opts/nkey",
        "/nats/connect_opts/sig",
        "/nats/connect_opts/auth_token",
        "/nats/connect_opts/user",
        "/nats/connect_opts/pass",
        "/nats/connect_opts/name",
        "/nats/connect_opts/lang",
        "/nats/connect_opts/version",
        "/nats/client_tls/version",
        "/nats/client_tls/cipher",
    ];
    const NOT_STRINGS: &[&str] = &["0", "-1", "1.5", "1e400", "true", "[]", "{}", "[\"x\"]"];
    const LISTS: &[&str] = &[
        "/nats/server_id/tags",
        "/nats/client_info/tags",
        "/nats/client_tls/certs",
        "/nats/client_tls/verified_chains",
    ];
    const NOT_LISTS: &[&str] = &["\"x\"", "0", "{}", "true", "[0]", "[{}]"];
    const NOT_U64: &[&str] = &[
        "-1",
        "18446744073709551616",
        "1.5",
        "1e400",
        "\"7\"",
        "true",
    ];
    const NOT_I32: &[&str] = &["2147483648", "-2147483649", "1.5", "\"1\"", "[]"];
    const NOT_U32: &[&str] = &["-1", "4294967296", "2.0", "\"2\""];
    const I64S: &[&str] = &["/exp", "/iat", "/nbf"];
    const NOT_I64: &[&str] = &[
        "9223372036854775808",
        "-9223372036854775809",
        "1e300",
        "1.5",
        "\"1\"",
        "{}",
    ];
    const OBJECTS: &[&str] = &[
        "/nats",
        "/nats/server_id",
        "/nats/client_info",
        "/nats/connect_opts",
        "/nats/client_tls",
    ];
    const NOT_OBJECTS: &[&str] = &["\"x\"", "0", "true", "1.5"];
    prop_oneof![
        4 => (select(STRINGS), select(NOT_STRINGS)),
        1 => (select(LISTS), select(NOT_LISTS)),
        1 => (Just("/nats/client_info/id"), select(NOT_U64)),
        1 => (Just("/nats/connect_opts/protocol"), select(NOT_I32)),
        1 => (Just("/nats/version"), select(NOT_U32)),
        1 => (select(I64S), select(NOT_I64)),
        1 => (select(OBJECTS), select(NOT_OBJECTS)),
    ]
}

/// JSON text of any shape, including numbers no integer type holds, lone
/// surrogates and the member names of a request.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        select(vec![
            "null",
            "true",
            "false",
            "1e400",
            "-0",
            "18446744073709551616",
            "-9223372036854775809",
            "1.5",
            "0x10",
            "\"\\ud800\"",
            "NaN"
        ])
        .prop_map(String::from),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:e}")),
        text().prop_map(|s| Value::String(s).to_string()),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(|items| format!("[{}]", items.join(","))),
            vec((json_key(), inner), 0..6).prop_map(|members| json_object(&members)),
        ]
    })
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "name", "nats", "server_id", "user_nkey",
            "client_info", "connect_opts", "client_tls", "type", "version", "id", "host", "tags", "xkey",
            "protocol", "certs", "verified_chains",
        ])
        .prop_map(String::from),
        1 => text(),
    ]
}

fn json_object(members: &[(String, String)]) -> String {
    let members: Vec<String> = members
        .iter()
        .map(|(key, value)| format!("{}:{value}", Value::String(key.clone())))
        .collect();
    format!("{{{}}}", members.join(","))
}

/// One dot-separated part of a JWT-shaped string.
#[derive(Debug, Clone)]
enum Part {
    /// The header nats-server writes.
    Header,
    Json(String),
    /// Claims-shaped JSON with `iss` set to the stranger's key, so that a
    /// signature by the stranger verifies.
    ClaimsByStranger(Vec<(String, String)>),
    /// `[[[…]]]` or `{"nats":{"nats":…}}`, this deep.
    Nested(usize, bool),
    Bytes(Vec<u8>),
    /// Not base64url: arbitrary text, padding, standard-alphabet characters.
    Raw(String),
    /// A real signature of the first two parts by the stranger.
    StrangerSignature,
}

fn part() -> impl Strategy<Value = Part> {
    prop_oneof![
        2 => Just(Part::Header),
        2 => json_text().prop_map(Part::Json),
        3 => vec((json_key(), json_text()), 0..10).prop_map(Part::ClaimsByStranger),
        1 => (1usize..5000, any::<bool>()).prop_map(|(depth, array)| Part::Nested(depth, array)),
        1 => vec(any::<u8>(), 0..96).prop_map(Part::Bytes),
        1 => prop_oneof![text(), "[A-Za-z0-9+/_=-]{0,90}"].prop_map(Part::Raw),
        2 => Just(Part::StrangerSignature),
    ]
}

impl Part {
    fn encode(&self, stranger: &KeyPair, signed: &str) -> String {
        let json = |text: &str| URL_SAFE_NO_PAD.encode(text);
        match self {
            Part::Header => json(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#),
            Part::Json(text) => json(text),
            Part::ClaimsByStranger(members) => {
                let mut members = members.clone();
                members.insert(
                    0,
                    (
                        "iss".into(),
                        Value::String(stranger.public_key()).to_string(),
                    ),
                );
                json(&json_object(&members))
            }
            Part::Nested(depth, true) => json(&("[".repeat(*depth) + &"]".repeat(*depth))),
            Part::Nested(depth, false) => {
                json(&(r#"{"nats":"#.repeat(*depth) + "0" + &"}".repeat(*depth)))
            }
            Part::Bytes(bytes) => URL_SAFE_NO_PAD.encode(bytes),
            Part::Raw(text) => text.clone(),
            Part::StrangerSignature => {
                URL_SAFE_NO_PAD.encode(stranger.sign(signed.as_bytes()).unwrap())
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Request path: properties.

/// Genuine requests with arbitrary content — every string field any text
/// (control characters, unicode), optional fields absent, extreme numbers,
/// harmless `exp`/`iat`/`nbf` — plaintext or sealed, then maybe damaged on the
/// wire, arriving with any `Nats-Server-Xkey` header, at a service with or
/// without an xkey. Undamaged ones are accepted exactly when the protocol says
/// (a sealed one needs the service's xkey and the sender's key in the
/// header), with every field as sent; all others are refused with an `Err`;
/// nothing panics or holds more than a few copies of the input.
#[test]
fn genuine_requests_are_accepted_intact_and_damaged_ones_refused() {
    let service = FakeService::default();
    let server = FakeServer::default();
    proptest!(config(1024), |(
        body in request_body(),
        claims in harmless_claims(),
        sealed in any::<bool>(),
        encrypted in any::<bool>(),
        header in xkey_header(),
        damage in option::weighted(0.3, tamper()),
    )| {
        let mut sent = server.claims(&service.issuer, server.request(ConnectOpts::default(), sealed));
        sent.nats = AuthorizationRequest {
            server_id: ServerId { id: sent.nats.server_id.id, xkey: sent.nats.server_id.xkey, ..body.server_id },
            user_nkey: sent.nats.user_nkey,
            ..body
        };
        sent.exp = claims.exp;
        sent.iat = claims.iat;
        sent.nbf = claims.nbf;
        sent.name = claims.name;
        let token = jwt::encode(&mut sent, &server.identity).unwrap();
        let (mut payload, _) = wire(&server, &token, sealed.then_some(&service.xkey));
        let header = header.value(&server);
        if let Some(damage) = &damage {
            damage.apply(&mut payload);
        }

        let opened = service.open_bounded(encrypted, &payload, header.as_deref())?;
        let right_header = header == Some(server.xkey.public_key());
        let accept = damage.is_none() && (!sealed || (encrypted && right_header));
        match opened {
            Ok(request) => {
                prop_assert!(accept, "accepted: sealed={sealed} encrypted={encrypted} damage={damage:?} header={header:?}");
                prop_assert_eq!(request.request(), &sent.nats);
                prop_assert_eq!(
                    (&request.claims.iss, &request.claims.sub, &request.claims.aud),
                    (&sent.iss, &sent.sub, &sent.aud)
                );
                prop_assert_eq!((request.claims.exp, request.claims.iat, request.claims.nbf), (sent.exp, sent.iat, sent.nbf));
                prop_assert_eq!(&request.claims.name, &sent.name);
                prop_assert_eq!(request.server_xkey, sealed.then(|| server.xkey.public_key()));
                prop_assert_eq!(request.refusal.is_some(), encrypted && !sealed);
            }
            Err(reason) => prop_assert!(!accept, "refused: {reason}"),
        }
    });
}

/// A genuine request with one thing wrong in its claims — wrong or missing
/// `iss`, `aud`, `sub`, `user_nkey`, `server_id.id` or `nats.type`, a foreign
/// signer, expired beyond the leeway, a mismatched `server_id.xkey`, a required
/// member missing, a member of the wrong type (huge numbers, floats, strings
/// for numbers, …) — re-signed by the server and sent plaintext or sealed, is
/// refused with an `Err`, without panicking.
#[test]
fn requests_with_broken_claims_are_refused() {
    let service = FakeService::default();
    let server = FakeServer::default();
    const RAW: &str = "@@raw@@";
    proptest!(config(1024), |(breakage in breakage(), sealed in any::<bool>(), client in request_body())| {
        let mut request = server.request(client.connect_opts, sealed);
        request.client_info = client.client_info;
        let mut claims = server.claims(&service.issuer, request);
        claims.iss = server.identity.public_key();
        let mut json = serde_json::to_value(&claims).unwrap();
        let mut signer = &server.identity;
        let foreign = KeyPair::new_server();
        let mut raw = None;
        match &breakage {
            Breakage::Issuer(iss) => put(&mut json, "/iss", iss.as_str().into()),
            Breakage::ForeignSigner => {
                signer = &foreign;
                put(&mut json, "/iss", foreign.public_key().into());
            }
            Breakage::Audience(aud) => put(&mut json, "/aud", aud.clone().into()),
            Breakage::Subject(sub) => put(&mut json, "/sub", sub.clone().into()),
            Breakage::Expired(ago) => put(&mut json, "/exp", (unix_now() - ago).into()),
            Breakage::UserNkey(key) => put(&mut json, "/nats/user_nkey", key.clone().into()),
            Breakage::ServerId(id) => put(&mut json, "/nats/server_id/id", id.clone().into()),
            Breakage::Kind(kind) => put(&mut json, "/nats/type", kind.as_str().into()),
            Breakage::ServerXkey(xkey) => put(&mut json, "/nats/server_id/xkey", xkey.clone().into()),
            Breakage::Remove(pointer) => remove(&mut json, pointer),
            Breakage::WrongType(pointer, value) => {
                put(&mut json, pointer, RAW.into());
                raw = Some(*value);
            }
        }
        let mut text = json.to_string();
        if let Some(value) = raw {
            text = text.replace(&format!("\"{RAW}\""), value);
        }
        let token = sign_raw(&text, signer);
        let (payload, header) = wire(&server, &token, sealed.then_some(&service.xkey));

        let opened = service.open_bounded(sealed, &payload, header.as_deref())?;
        let harmless = matches!(breakage, Breakage::ServerXkey(_)) && !sealed;
        prop_assert_eq!(opened.is_ok(), harmless, "{}: {:?}", text, opened.err());
    });
}

/// Sets the member at `pointer`, creating missing parent objects; `null`
/// removes it.
fn put(json: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let mut node = json;
    for step in parent.split('/').skip(1) {
        node = node
            .as_object_mut()
            .unwrap()
            .entry(step)
            .or_insert_with(|| Value::Object(Default::default()));
    }
    let object = node.as_object_mut().unwrap();
    if value.is_null() {
        object.remove(key);
    } else {
        object.insert(key.to_string(), value);
    }
}

fn remove(json: &mut Value, pointer: &str) {
    put(json, pointer, Value::Null);
}

/// Arbitrary bytes — as they come, or starting like a JWT (`eyJ`) or a
/// sealed box (`xkv1`) — with any header, at a service with or without an
/// xkey, are refused with an `Err` in bounded memory.
#[test]
fn arbitrary_bytes_are_refused() {
    let service = FakeService::default();
    let server = FakeServer::default();
    let prefix = select(vec![&b""[..], &b"eyJ"[..], &b"xkv1"[..]]);
    proptest!(config(2048), |(
        prefix in prefix,
        bytes in vec(any::<u8>(), 0..4096),
        header in xkey_header(),
        encrypted in any::<bool>(),
    )| {
        let payload = [prefix, &bytes[..]].concat();
        let header = header.value(&server);
        let opened = service.open_bounded(encrypted, &payload, header.as_deref())?;
        prop_assert!(opened.is_err());
    });
}

/// JWT-shaped text — three (or two, or four) dot-separated parts, each a
/// header, arbitrary JSON, claims-shaped JSON, JSON nested thousands deep,
/// arbitrary bytes, non-base64 text or a real signature by a stranger's key —
/// sent plaintext or sealed by the server, is refused with an `Err` in bounded
/// memory and without panicking.
#[test]
fn jwt_shaped_strings_are_refused() {
    let service = FakeService::default();
    let server = FakeServer::default();
    let stranger = KeyPair::new_server();
    proptest!(config(1024), |(parts in vec(part(), 2..5), sealed in any::<bool>())| {
        let mut token = String::new();
        for (index, part) in parts.iter().enumerate() {
            if index > 0 {
                token.push('.');
            }
            let encoded = part.encode(&stranger, &token[..token.len().saturating_sub(1)]);
            token.push_str(&encoded);
        }
        let (payload, header) = wire(&server, &token, sealed.then_some(&service.xkey));
        let opened = service.open_bounded(sealed, &payload, header.as_deref())?;
        prop_assert!(opened.is_err());
    });
}

// ---------------------------------------------------------------------------
// Grant path: strategies.

/// Accounts the operator allows in these tests.
const ACCOUNTS: [&str; 3] = ["APP", "$G", "ÜBER.app"];

/// The operator's rules: the accounts above and any valid lifetimes
/// (`config/mod.rs` requires 1 ≤ default ≤ max).
fn grant_rules() -> impl Strategy<Value = GrantRules> {
    let seconds = || prop_oneof![1u64..100_000, any::<u64>(), Just(u64::MAX)];
    (seconds(), seconds()).prop_map(|(a, b)| GrantRules {
        accounts: Accounts::Listed(ACCOUNTS.iter().map(|a| a.to_string()).collect()),
        default_lifetime_secs: a.min(b).max(1),
        max_lifetime_secs: a.max(b).max(1),
        ceiling: Default::default(),
    })
}

// Each grant strategy below takes `wild`. A plausible grant (`wild` false)
// holds what a policy would return plus the values on the edge of what
// nats-server accepts (queue names like ".", reply TTLs around Go's limit,
// near-miss zone names), so that most pass the rules and reach the oracle.
// A wild grant adds garbage (control characters, malformed subjects,
// arbitrary numbers) that the rules must refuse without panicking.

/// `plausible`, mixed with `garbage` for wild grants.
fn or_wild<T: std::fmt::Debug + 'static>(
    wild: bool,
    plausible: impl Strategy<Value = T> + 'static,
    garbage: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    if wild {
        prop_oneof![3 => plausible, 1 => garbage].boxed()
    } else {
        plausible.boxed()
    }
}

/// One token of a well-formed subject: ordinary, non-ASCII, or `*`.
fn subject_token() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-zA-Z0-9_$-]{1,6}",
        1 => "[é日😀ÜİЖ\"\\/:#%]{1,3}",
        1 => Just("*".to_string()),
    ]
}

/// A well-formed subject: tokens, maybe ending in `>`.
fn good_subject() -> impl Strategy<Value = String> {
    (vec(subject_token(), 1..4), any::<bool>()).prop_map(|(mut tokens, full_wildcard)| {
        if full_wildcard {
            tokens.push(">".into());
        }
        tokens.join(".")
    })
}

/// Subject-ish garbage: misplaced wildcards, empty tokens, whitespace,
/// control characters.
fn odd_subject() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        3 => "[a-z]{1,3}",
        1 => Just(String::new()),
        1 => "[a-zé日]{0,2}[*>]{1,2}",
        1 => vec(odd_char(), 1..4).prop_map(String::from_iter),
    ];
    prop_oneof![
        3 => vec(token, 1..5).prop_map(|tokens| tokens.join(".")),
        1 => text(),
    ]
}

fn subject(wild: bool) -> BoxedStrategy<String> {
    or_wild(wild, good_subject(), odd_subject())
}

/// A queue group name after a subscribe subject, including names that are
/// not subjects (".", "a..b"), which nats-io/jwt refuses.
fn queue(wild: bool) -> BoxedStrategy<String> {
    let plausible = prop_oneof![
        6 => "[a-z0-9_-]{1,8}",
        2 => good_subject(),
        2 => select(vec![".", "q.", ".q", "a..b", "q.>.x", ">", "*"]).prop_map(String::from),
    ];
    let garbage = prop_oneof![select(vec![" q", "q q", ""]).prop_map(String::from), text(),];
    or_wild(wild, plausible, garbage)
}

/// A subscribe entry: a subject, or a subject and a queue group.
fn subscribe_entry(wild: bool) -> BoxedStrategy<String> {
    prop_oneof![
        3 => subject(wild),
        1 => (subject(wild), queue(wild)).prop_map(|(subject, queue)| format!("{subject} {queue}")),
    ]
    .boxed()
}

fn permission(entry: BoxedStrategy<String>) -> impl Strategy<Value = Permission> {
    (vec(entry.clone(), 0..4), vec(entry, 0..2))
        .prop_map(|(allow, deny)| Permission { allow, deny })
}

/// A source network: canonical CIDRs (mostly holding the test client's
/// address), bare addresses, and odd forms.
fn cidr(wild: bool) -> BoxedStrategy<String> {
    let plausible = prop_oneof![
        3 => select(vec!["10.0.0.0/8", "0.0.0.0/0", "::/0", "10.1.2.3", "::1", "10.1.2.3/32", "::ffff:10.1.2.3/120"])
            .prop_map(String::from),
        1 => (any::<[u8; 4]>(), 0u8..=32).prop_map(|(ip, bits)| format!("{}/{bits}", std::net::Ipv4Addr::from(ip))),
        1 => (any::<u128>(), 0u8..=128).prop_map(|(ip, bits)| format!("{}/{bits}", std::net::Ipv6Addr::from(ip))),
    ];
    let garbage = prop_oneof![
        select(vec![
            "10.0.0.0/08",
            "010.0.0.0/8",
            "10.0.0.0/33",
            "fe80::1%eth0/64",
            "10.0.0.0/",
            "/8",
            " 10.0.0.0/8"
        ])
        .prop_map(String::from),
        text(),
    ];
    or_wild(wild, plausible, garbage)
}

/// The connecting client as the request describes it: its address and how
/// it connects (which the rules check source networks and connection types
/// against).
fn client() -> impl Strategy<Value = ClientInfo> {
    let host = prop_oneof![
        6 => Just(Some("10.1.2.3".to_string())),
        1 => Just(Some("::1".to_string())),
        1 => Just(None),
        1 => any::<[u8; 4]>().prop_map(|ip| Some(std::net::Ipv4Addr::from(ip).to_string())),
        1 => text().prop_map(Some),
    ];
    let transport = prop_oneof![
        4 => Just((Some("Client"), Some("nats"))),
        1 => select(vec![
            (Some("Client"), Some("websocket")),
            (Some("Client"), Some("mqtt")),
            (Some("Leafnode"), None),
            (None, None),
        ]),
    ];
    (host, transport).prop_map(|(host, (kind, client_type))| ClientInfo {
        host,
        id: Some(7),
        kind: kind.map(String::from),
        client_type: client_type.map(String::from),
        ..ClientInfo::default()
    })
}

/// A `HH:MM:SS` time; wild: Go-only forms (one-digit hour, fraction), out of
/// range, or text.
fn clock(wild: bool) -> BoxedStrategy<String> {
    let plausible =
        (0u8..24, 0u8..60, 0u8..60).prop_map(|(h, m, s)| format!("{h:02}:{m:02}:{s:02}"));
    let garbage = prop_oneof![
        (0u8..100, 0u8..100, 0u8..100).prop_map(|(h, m, s)| format!("{h:02}:{m:02}:{s:02}")),
        (0u8..10, 0u8..60, 0u8..60).prop_map(|(h, m, s)| format!("{h}:{m:02}:{s:02}.5")),
        text(),
    ];
    or_wild(wild, plausible, garbage)
}

/// Two windows that together cover every instant of the day, in any zone.
fn all_day() -> Vec<TimeWindow> {
    let window = |start: &str, end: &str| TimeWindow {
        start: start.into(),
        end: end.into(),
    };
    vec![
        window("00:00:00", "12:00:01"),
        window("12:00:00", "00:00:01"),
    ]
}

fn time_windows(wild: bool) -> impl Strategy<Value = Vec<TimeWindow>> {
    prop_oneof![
        3 => Just(vec![]),
        2 => Just(all_day()),
        1 => vec((clock(wild), clock(wild)).prop_map(|(start, end)| TimeWindow { start, end }), 1..3),
    ]
}

/// A `times_location`: IANA names, Go's specials (`Local`), near misses;
/// wild: any text.
fn location(wild: bool) -> BoxedStrategy<String> {
    let plausible = prop_oneof![
        4 => select(vec!["Europe/Paris", "America/New_York", "UTC", "Etc/GMT+5", "US/Eastern", "Asia/Kolkata"]),
        1 => select(vec!["", "Local", "Mars/Olympus", "europe/paris", "Europe/Paris ", "../etc/passwd",
                         "/etc/localtime", "GMT+5", "+05:00", "Paris", "Europe//Paris"]),
    ]
    .prop_map(String::from);
    or_wild(
        wild,
        plausible,
        prop_oneof!["[A-Z][a-z]{1,8}/[A-Z][a-z]{1,8}", text()],
    )
}

/// A per-user limit: none or "no limit" (-1); wild: any number.
fn limit(wild: bool) -> BoxedStrategy<Option<i64>> {
    let garbage =
        prop_oneof![any::<i64>(), -2i64..2, Just(i64::MAX), Just(i64::MIN)].prop_map(Some);
    or_wild(wild, prop_oneof![Just(None), Just(Some(-1))], garbage)
}

fn limits(wild: bool) -> impl Strategy<Value = Limits> {
    let cidrs = prop_oneof![4 => Just(vec![]), 1 => vec(cidr(wild), 1..3)];
    let location = option::weighted(0.8, location(wild));
    (
        limit(wild),
        limit(wild),
        limit(wild),
        cidrs,
        time_windows(wild),
        location,
    )
        .prop_map(
            |(subs, data, payload, source_cidrs, times, times_location)| Limits {
                subs,
                data,
                payload,
                source_cidrs,
                times,
                times_location,
            },
        )
}

/// Reply permission: any `max`, and a `ttl` in milliseconds often right
/// around where it stops fitting Go's `time.Duration` in nanoseconds.
fn responses(wild: bool) -> impl Strategy<Value = ResponsePermission> {
    const LAST_MS: u64 = i64::MAX as u64 / 1_000_000;
    let ttl = or_wild(
        wild,
        prop_oneof![3 => 0u64..600_000, 1 => LAST_MS - 2..LAST_MS + 3],
        prop_oneof![any::<u64>(), Just(u64::MAX)],
    );
    (any::<u32>(), ttl).prop_map(|(max_messages, ttl_ms)| ResponsePermission {
        max_messages,
        ttl_ms,
    })
}

fn connection_types() -> impl Strategy<Value = Vec<ConnectionType>> {
    let one = select(vec![
        ConnectionType::Standard,
        ConnectionType::Websocket,
        ConnectionType::Leafnode,
        ConnectionType::LeafnodeWebsocket,
        ConnectionType::Mqtt,
        ConnectionType::MqttWebsocket,
        ConnectionType::InProcess,
    ]);
    prop_oneof![2 => Just(vec![]), 1 => vec(one, 1..4)]
}

/// A grant as a policy may return it: plausible three times in four, wild
/// otherwise.
fn grant() -> impl Strategy<Value = Grant> {
    prop_oneof![3 => grant_with(false), 1 => grant_with(true)]
}

fn grant_with(wild: bool) -> impl Strategy<Value = Grant> {
    let account = or_wild(
        wild,
        select(ACCOUNTS.to_vec()).prop_map(String::from),
        text(),
    );
    let name = option::of(or_wild(wild, "[A-Za-z ]{0,12}", text()));
    let tag = or_wild(wild, "[A-Za-z0-9:_-][A-Za-z0-9:_ -]{0,9}", text());
    let lifetime = option::of(prop_oneof![0u64..100_000, any::<u64>(), Just(u64::MAX)]);
    (
        account,
        name,
        permission(subject(wild)),
        permission(subscribe_entry(wild)),
        option::of(responses(wild)),
        lifetime,
        vec(tag, 0..4),
        limits(wild),
        connection_types(),
    )
        .prop_map(
            |(
                account,
                name,
                publish,
                subscribe,
                responses,
                expires_in_secs,
                tags,
                limits,
                connection_types,
            )| Grant {
                account,
                name,
                publish,
                subscribe,
                responses,
                expires_in_secs,
                tags,
                limits,
                connection_types,
            },
        )
}

// ---------------------------------------------------------------------------
// Grant path: minting, and the oracle.

/// The response the service signs for `grant`, minted as `serve/binding.rs` does,
/// opened as nats-server does; returns the user JWT inside it.
fn mint(
    server: &FakeServer,
    issuer: &AccountKey,
    request: &AuthorizationRequest,
    grant: &CheckedGrant,
) -> Result<String, String> {
    let now = unix_now();
    let mut user = mint::user_claims(request, &grant.to_mint(), now);
    let payload = mint::sign_allow(request, &mut user, issuer, issuer, now, None)
        .map_err(|error: ResponseError| format!("the service cannot sign the grant: {error}"))?;
    if payload.len() > MAX_TOKEN_BYTES {
        return Err(format!("the response is {} bytes", payload.len()));
    }
    let response = server.open_response(&payload, None)?;
    let ok = response.aud.as_deref() == Some(request.server_id.id.as_str())
        && response.sub == request.user_nkey
        && response.nats.kind == "authorization_response"
        && response.nats.version == 2
        && response.nats.error.is_none()
        && response.nats.issuer_account.is_none();
    if !ok {
        return Err(format!("the response envelope is wrong: {response:?}"));
    }
    response
        .nats
        .jwt
        .ok_or_else(|| "the response carries no user JWT".into())
}

/// Who the user JWT must name, in config mode.
struct Expected<'a> {
    issuer: &'a str,
    user_nkey: &'a str,
    account: &'a str,
}

/// Why nats-server (with nats-io/jwt v2) would refuse `token` as the user JWT
/// of a callout response, or would admit a user other than the one the JWT
/// describes; `None` when it accepts it as written. Each rule names its source.
fn nats_refusal(token: &str, expected: &Expected<'_>) -> Option<String> {
    // decoder.go Decode: size, three chunks, base64url without padding.
    if token.len() > MAX_TOKEN_BYTES {
        return Some(format!(
            "token is {} bytes, over jwt.MaxTokenSize",
            token.len()
        ));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Some("expected 3 chunks".into());
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
    let (Some(header), Some(payload_json), Some(signature)) =
        (decode(header), decode(payload), decode(signature))
    else {
        return Some("a chunk is not RawURLEncoding base64".into());
    };
    // header.go: what Go writes (and Valid() accepts).
    if header != br#"{"typ":"JWT","alg":"ed25519-nkey"}"# {
        return Some(format!("header is {}", String::from_utf8_lossy(&header)));
    }
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&payload_json) else {
        return Some("payload is not a JSON object".into());
    };
    let nats = match claims.get("nats") {
        Some(Value::Object(nats)) => nats,
        _ => return Some("no nats object".into()),
    };
    // decoder.go loadClaims: version 2 (signature over header.payload), type user.
    if nats.get("version").and_then(Value::as_i64) != Some(2)
        || nats.get("type") != Some(&Value::from("user"))
    {
        return Some("nats.type is not \"user\" or nats.version is not 2".into());
    }
    // claims.go verify; user_claims.go ExpectedPrefixes: an account key signed it.
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !is_public_key(iss, KeyPairType::Account) {
        return Some(format!("iss {iss:?} is not an account public key"));
    }
    let signed = &token[..header_and_payload_len(token)];
    if KeyPair::from_public_key(iss)
        .and_then(|key| key.verify(signed.as_bytes(), &signature))
        .is_err()
    {
        return Some("signature does not verify with iss".into());
    }
    // auth_callout.go getIssuerAccount, processReply, assignAccountAndPermissions (config mode).
    if iss != expected.issuer {
        return Some(format!("iss {iss} is not the auth_callout issuer"));
    }
    if nats.contains_key("issuer_account") {
        return Some("issuer_account is set in config mode".into());
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if sub != expected.user_nkey || !is_public_key(sub, KeyPairType::User) {
        return Some(format!("sub {sub:?} is not the request's user_nkey"));
    }
    if claims.get("aud").and_then(Value::as_str) != Some(expected.account)
        || expected.account.is_empty()
    {
        return Some(format!(
            "aud {:?} is not the granted account",
            claims.get("aud")
        ));
    }
    // claims.go ClaimsData (int64 times) and Validate: not expired, not before.
    let now = unix_now();
    let time = |name: &str| claims.get(name).map(|v| v.as_i64().ok_or(()));
    let (Some(Ok(exp)), Some(Ok(iat))) = (time("exp"), time("iat")) else {
        return Some("exp and iat must be int64".into());
    };
    if exp <= iat || exp < now {
        return Some(format!("exp {exp} is not after iat {iat} and now {now}"));
    }
    if claims.contains_key("nbf") {
        return Some("nbf is set".into());
    }
    if claims.get("name").is_some_and(|name| !name.is_string()) {
        return Some("name is not a string".into());
    }
    go_user_refusal(nats)
}

/// Why Go's `json.Unmarshal` into `jwt.User`, then `User.Validate` and
/// nats-server's use of the user, would fail or drop part of `nats`.
fn go_user_refusal(nats: &serde_json::Map<String, Value>) -> Option<String> {
    let strings = |value: Option<&Value>| -> Option<Vec<String>> {
        match value {
            None => Some(vec![]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(String::from))
                .collect(),
            Some(_) => None,
        }
    };
    // types.go Permissions: pub/sub {allow, deny} of strings; checkPermission.
    for (member, queues) in [("pub", false), ("sub", true)] {
        let permission = nats.get(member);
        for list in ["allow", "deny"] {
            let Some(entries) = strings(permission.and_then(|p| p.get(list))) else {
                return Some(format!("{member}.{list} is not a list of strings"));
            };
            for entry in entries {
                if !jwt_permission_valid(&entry, queues) {
                    return Some(format!(
                        "{member}.{list} {entry:?} fails jwt checkPermission"
                    ));
                }
                let server_ok = if queues {
                    server_subject_queue(&entry).is_some()
                } else {
                    server_subject_valid(&entry)
                };
                if !server_ok {
                    return Some(format!(
                        "{member}.{list} {entry:?} is dropped by nats-server setPermissions"
                    ));
                }
            }
        }
    }
    // types.go ResponsePermission: max is a Go int, ttl a time.Duration (int64 ns).
    if let Some(resp) = nats.get("resp") {
        let fits = |name: &str| resp.get(name).is_none_or(|v| v.as_i64().is_some());
        if !fits("max") || !fits("ttl") {
            return Some(format!("resp {resp} does not fit Go's int / time.Duration"));
        }
    }
    // types.go Limits.Validate: src CIDRs, times, times_location.
    let Some(src) = strings(nats.get("src")) else {
        return Some("src is not a list of strings".into());
    };
    if let Some(cidr) = src.iter().find(|cidr| !go_parse_cidr(cidr)) {
        return Some(format!("src {cidr:?} fails net.ParseCIDR"));
    }
    if let Some(times) = nats.get("times") {
        let Some(times) = times.as_array() else {
            return Some("times is not a list".into());
        };
        for window in times {
            for end in ["start", "end"] {
                let clock = window.get(end).and_then(Value::as_str).unwrap_or_default();
                if clock.is_empty() || !go_parse_clock(clock) {
                    return Some(format!(
                        "times {end} {clock:?} fails time.Parse(\"15:04:05\")"
                    ));
                }
            }
        }
    }
    if let Some(location) = nats.get("times_location") {
        let name = location.as_str().unwrap_or("\u{0}");
        if !go_load_location(name) {
            return Some(format!("times_location {location} fails time.LoadLocation"));
        }
    }
    // types.go NatsLimits: int64.
    for limit in ["subs", "data", "payload"] {
        if nats.get(limit).is_some_and(|v| v.as_i64().is_none()) {
            return Some(format!("{limit} is not an int64"));
        }
    }
    // auth_callout.go convertAllowedConnectionTypes.
    const KNOWN: [&str; 7] = [
        "STANDARD",
        "WEBSOCKET",
        "LEAFNODE",
        "LEAFNODE_WS",
        "MQTT",
        "MQTT_WS",
        "IN_PROCESS",
    ];
    let Some(types) = strings(nats.get("allowed_connection_types")) else {
        return Some("allowed_connection_types is not a list of strings".into());
    };
    if let Some(unknown) = types.iter().find(|t| !KNOWN.contains(&t.as_str())) {
        return Some(format!("unknown connection type {unknown:?}"));
    }
    // claims.go GenericFields.Tags: strings. Control characters are the
    // project's rule (a tag is shown in monitoring and logs), not Go's.
    let Some(tags) = strings(nats.get("tags")) else {
        return Some("tags is not a list of strings".into());
    };
    if let Some(tag) = tags.iter().find(|tag| tag.chars().any(char::is_control)) {
        return Some(format!("tag {tag:?} has control characters"));
    }
    None
}

fn is_public_key(key: &str, kind: KeyPairType) -> bool {
    nkeys::from_public_key(key).is_ok_and(|(prefix, _)| KeyPairType::from(prefix) == kind)
}

/// Length of `header.payload`, the signed part.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

/// types.go `Subject.Validate`.
fn jwt_subject_valid(subject: &str) -> bool {
    !subject.is_empty()
        && !subject.contains(' ')
        && !subject.starts_with('.')
        && !subject.ends_with('.')
        && !subject.contains("..")
}

/// types.go `checkPermission`: split on single spaces; a queue only where permitted.
fn jwt_permission_valid(entry: &str, permit_queue: bool) -> bool {
    match entry.split(' ').collect::<Vec<_>>()[..] {
        [subject] => jwt_subject_valid(subject),
        [subject, queue] => permit_queue && jwt_subject_valid(subject) && jwt_subject_valid(queue),
        _ => false,
    }
}

/// sublist.go `IsValidSubject` (no rune check): non-empty tokens, `>` last,
/// no ASCII whitespace.
fn server_subject_valid(subject: &str) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut after_full_wildcard = false;
    for token in subject.split('.') {
        if token.is_empty() || after_full_wildcard {
            return false;
        }
        if token.contains(['\t', '\n', '\u{c}', '\r', ' ']) {
            return false;
        }
        after_full_wildcard = token == ">";
    }
    true
}

/// client.go `splitSubjectQueue` (`strings.Fields`: Unicode whitespace), and
/// the same split as nats-io/jwt's `strings.Split(s, " ")`, so that the server
/// enforces the entry the JWT validated.
fn server_subject_queue(entry: &str) -> Option<(&str, Option<&str>)> {
    let fields: Vec<&str> = entry
        .split(char::is_whitespace)
        .filter(|f| !f.is_empty())
        .collect();
    if fields != entry.split(' ').collect::<Vec<_>>()
        || !fields.iter().all(|f| server_subject_valid(f))
    {
        return None;
    }
    match fields[..] {
        [subject] => Some((subject, None)),
        [subject, queue] => Some((subject, Some(queue))),
        _ => None,
    }
}

/// Go's `time.Parse("15:04:05", text)`: hour of one or two digits below 24,
/// two-digit minute and second below 60, then optionally a fraction
/// (`.5`, `,5`) that Go accepts even though the layout has none.
fn go_parse_clock(text: &str) -> bool {
    let b = text.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let value = |i: usize| u32::from(b[i] - b'0');
    if !digit(0) {
        return false;
    }
    let (hour, mut i) = if digit(1) {
        (value(0) * 10 + value(1), 2)
    } else {
        (value(0), 1)
    };
    if hour >= 24 {
        return false;
    }
    for _minute_then_second in 0..2 {
        if b.get(i) != Some(&b':')
            || !digit(i + 1)
            || !digit(i + 2)
            || value(i + 1) * 10 + value(i + 2) >= 60
        {
            return false;
        }
        i += 3;
    }
    if matches!(b.get(i), Some(b'.' | b',')) && digit(i + 1) {
        i += 1;
        while digit(i) {
            i += 1;
        }
    }
    i == b.len()
}

/// Go's `net.ParseCIDR`: `address/bits`, cut at the first `/`, no zone,
/// decimal bits within the address's length.
fn go_parse_cidr(text: &str) -> bool {
    let Some((address, bits)) = text.split_once('/') else {
        return false;
    };
    let Ok(address) = address.parse::<IpAddr>() else {
        return false;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && bits.trim_start_matches('0').len() <= 3
        && bits.parse::<u32>().is_ok_and(|bits| bits <= max)
}

/// Go's `time.LoadLocation`: `UTC`, `Local`, or a zone of the IANA database,
/// never a path with `..` or a leading slash.
fn go_load_location(name: &str) -> bool {
    match name {
        "" | "UTC" | "Local" => true,
        _ if name.contains("..") || name.starts_with(['/', '\\']) => false,
        _ => name.parse::<chrono_tz::Tz>().is_ok(),
    }
}

#[test]
fn the_oracle_knows_go() {
    for (clock, ok) in [
        ("08:00:00", true),
        ("8:00:00", true),
        ("23:59:59.999", true),
        ("24:00:00", false),
        ("08:0:00", false),
        ("08:00:60", false),
        ("08:00:00 ", false),
        ("", false),
    ] {
        assert_eq!(go_parse_clock(clock), ok, "{clock:?}");
    }
    for (cidr, ok) in [
        ("10.0.0.0/8", true),
        ("10.0.0.0/008", true),
        ("::ffff:10.1.2.3/120", true),
        ("10.0.0.1", false),
        ("10.0.0.0/33", false),
        ("fe80::1%eth0/64", false),
        ("10.0.0.0/", false),
    ] {
        assert_eq!(go_parse_cidr(cidr), ok, "{cidr:?}");
    }
    for (name, ok) in [
        ("Europe/Paris", true),
        ("Local", true),
        ("US/Eastern", true),
        ("Mars/Olympus", false),
        ("europe/paris", false),
    ] {
        assert_eq!(go_load_location(name), ok, "{name:?}");
    }
    for (entry, queues, ok) in [
        ("a.*.>", false, true),
        ("a b", false, false),
        ("a b", true, true),
        ("a .b", true, false),
        ("a  b", true, false),
        ("a.>.b", false, true), // nats-io/jwt allows it; nats-server does not (below)
    ] {
        assert_eq!(jwt_permission_valid(entry, queues), ok, "{entry:?}");
    }
    assert!(!server_subject_valid("a.>.b"));
    assert!(
        server_subject_queue("a\u{a0}b").is_none(),
        "Go's Fields splits at NBSP, jwt does not"
    );
    assert_eq!(server_subject_queue("a.* q"), Some(("a.*", Some("q"))));
}

// ---------------------------------------------------------------------------
// Grant path: properties.

/// Every grant the rules accept — for any operator rules, any client address
/// — becomes a response and a user JWT that nats-server accepts as written
/// ([`nats_refusal`] finds nothing), granting exactly the subjects the policy
/// asked for; rejected grants are refused with an `Err`; nothing panics.
#[test]
fn accepted_grants_mint_user_jwts_nats_server_accepts() {
    let server = FakeServer::default();
    let issuer = AccountKey::identity(FastSigner::new(&KeyPair::new_account()).unwrap());
    proptest!(config(2048), |(rules in grant_rules(), grant in grant(), client in client())| {
        let mut request = server.request(ConnectOpts::default(), false);
        request.client_info = client;
        let Ok(checked) = rules.admit(&grant, &request) else {
            return Ok(());
        };
        let token = mint(&server, &issuer, &request, &checked).map_err(TestCaseError::fail)?;
        let expected = Expected { issuer: issuer.key.public(), user_nkey: &request.user_nkey, account: &grant.account };
        if let Some(refusal) = nats_refusal(&token, &expected) {
            return Err(TestCaseError::fail(format!("rules accepted a grant nats-server refuses: {refusal}")));
        }
        let user: Claims<crate::protocol::claims::User> = jwt::decode(&token).unwrap();
        prop_assert_eq!(
            (&user.nats.publish.allow, &user.nats.publish.deny, &user.nats.subscribe.allow, &user.nats.subscribe.deny),
            (&grant.publish.allow, &grant.publish.deny, &grant.subscribe.allow, &grant.subscribe.deny)
        );
    });
}

/// The rules' size bounds (`MAX_SUBJECTS` subjects of `MAX_SUBJECT_BYTES`,
/// `MAX_TAGS` tags, `MAX_NAME_BYTES` of name) and whatever number of source
/// networks and time windows they let through still make a user JWT the
/// service can sign and nats-server accepts: a grant the rules accept never
/// fails at signing. Its case count is fixed (`PROPTEST_CASES` does not
/// apply): one case builds up to tens of megabytes.
#[test]
fn grants_within_the_rules_bounds_fit_in_a_jwt() {
    let server = FakeServer::default();
    let issuer = AccountKey::identity(FastSigner::new(&KeyPair::new_account()).unwrap());
    let rules = GrantRules {
        accounts: Accounts::Listed(vec!["APP".into()]),
        default_lifetime_secs: 60,
        max_lifetime_secs: 600,
        ceiling: Default::default(),
    };
    let sizes = (
        0..=MAX_SUBJECTS,
        1..=MAX_SUBJECT_BYTES,
        0..=MAX_TAGS,
        0..=MAX_NAME_BYTES,
        0usize..40_000,
        0usize..10_000,
    );
    let result = TestRunner::new(config(24)).run(
        &sizes,
        |(subjects, subject_bytes, tags, name_bytes, networks, all_day_pairs)| {
            let grant = Grant {
                account: "APP".into(),
                name: Some("n".repeat(name_bytes)),
                publish: Permission {
                    allow: vec!["s".repeat(subject_bytes); subjects],
                    deny: vec![],
                },
                subscribe: Permission {
                    allow: vec![],
                    deny: vec![],
                },
                responses: None,
                expires_in_secs: None,
                tags: vec!["t".repeat(MAX_SUBJECT_BYTES); tags],
                limits: Limits {
                    subs: None,
                    data: None,
                    payload: None,
                    source_cidrs: vec!["10.0.0.0/8".into(); networks],
                    times: all_day()
                        .into_iter()
                        .cycle()
                        .take(2 * all_day_pairs)
                        .collect(),
                    times_location: Some("UTC".into()),
                },
                connection_types: vec![],
            };
            let mut request = server.request(ConnectOpts::default(), false);
            request.client_info.host = Some("10.1.2.3".into());
            let Ok(checked) = rules.admit(&grant, &request) else {
                return Ok(()); // refusing is fine; signing and failing is not
            };
            let token = mint(&server, &issuer, &request, &checked).map_err(TestCaseError::fail)?;
            let expected = Expected {
                issuer: issuer.key.public(),
                user_nkey: &request.user_nkey,
                account: "APP",
            };
            prop_assert_eq!(nats_refusal(&token, &expected), None);
            Ok(())
        },
    );
    if let Err(error) = result {
        panic!("{error}\n(subjects, subject_bytes, tags, name_bytes, networks, all_day_pairs)");
    }
}

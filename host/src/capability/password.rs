//! The `password` capability: a password checked against the hash an
//! identity store keeps, natively and in constant time, on the blocking pool
//! under a process-wide limit of hashes at once (each costs milliseconds of
//! a core by design: a storm of wrong passwords must not take the CPU that
//! answers everyone else).
//!
//! Formats (the hash's own prefix says which):
//! - PHC strings of RustCrypto's `password-hash` family: `$argon2id$`,
//!   `$argon2i$`, `$argon2d$`, `$scrypt$` (also what passlib writes) and
//!   `$pbkdf2-sha256$i=N,l=L$` (salt and hash in unpadded standard base64);
//! - passlib's `$pbkdf2-sha256$<rounds>$<salt>$<hash>` (its "adapted"
//!   base64: `.` for `+`, no padding);
//! - bcrypt's modular crypt `$2a$`, `$2b$`, `$2x$`, `$2y$` (passwords past
//!   72 bytes are cut there, as every bcrypt implementation does).
//!
//! Each algorithm has a floor (the operator's, OWASP's by default) under
//! which a hash is refused as too cheap, and a ceiling (the host's) over
//! which it is refused as malformed: a hash from a store an attacker can
//! write must not pin a core, or a gigabyte, for minutes.

use std::num::NonZeroU32;
use std::sync::Arc;

use base64::Engine;
use base64::alphabet::Alphabet;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use password_hash::{PasswordHash, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::config::PasswordConfig;
use crate::policy::sandbox::CallState;
use crate::policy::wit::nats::callout::password::{Host, PasswordError};

/// The largest argon2 memory the host computes, in KiB (64 MiB: OWASP's
/// recommendations stay under 47 MiB).
const ARGON2_MAX_MEMORY_KIB: u32 = 64 * 1024;
/// The largest argon2 work: memory (KiB) times passes (about a second).
const ARGON2_MAX_WORK: u64 = 1 << 20;
/// The largest scrypt memory, 128·r·N bytes, times its parallelism.
const SCRYPT_MAX_BYTES: u64 = 64 << 20;
/// bcrypt's cost 14 and 2 million pbkdf2-sha256 rounds: about a second.
const BCRYPT_MAX_COST: u32 = 14;
const PBKDF2_MAX_ITERATIONS: u32 = 2_000_000;

/// A policy's password grant: the floors, and the hashing slots.
#[derive(Clone)]
pub(crate) struct Passwords {
    floors: PasswordConfig,
    /// The process's slots.
    slots: Arc<Semaphore>,
    /// This policy's share of them: all but one, so no policy's hashes
    /// (chosen by the policy, so as costly as the ceilings allow) take
    /// every slot.
    own: Arc<Semaphore>,
    /// A shadow's checks take a free slot or fail: a candidate must never
    /// make an enforcing call wait.
    shadow: bool,
}

/// A hash read and checked against the floors and ceilings, ready to compute.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Checked {
    /// argon2, scrypt or RustCrypto's pbkdf2: verified by `password-hash`.
    Phc(String),
    /// passlib's pbkdf2-sha256.
    PasslibPbkdf2 {
        rounds: NonZeroU32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Bcrypt(String),
}

impl Passwords {
    pub(crate) fn new(floors: PasswordConfig, slots: Arc<Semaphore>, total: usize) -> Passwords {
        Passwords {
            floors,
            slots,
            own: Arc::new(Semaphore::new(total.saturating_sub(1).max(1))),
            shadow: false,
        }
    }

    /// The same grant for a shadow policy.
    pub(crate) fn for_shadow(&self) -> Passwords {
        Passwords {
            shadow: true,
            ..self.clone()
        }
    }

    /// Whether `password` matches `hash`, computed on the blocking pool once
    /// a hashing slot is free.
    pub(crate) async fn verify(&self, password: &str, hash: &str) -> Result<bool, PasswordError> {
        let checked = check(hash, &self.floors)?;
        let closed = |_| PasswordError::MalformedHash("the host is shutting down".into());
        let slot = if self.shadow {
            match (
                self.own.clone().try_acquire_owned(),
                self.slots.clone().try_acquire_owned(),
            ) {
                (Ok(own), Ok(shared)) => (own, shared),
                _ => {
                    return Err(PasswordError::MalformedHash(
                        "no hashing slot free for a shadow policy".into(),
                    ));
                }
            }
        } else {
            let own = self.own.clone().acquire_owned().await.map_err(closed)?;
            let shared = self.slots.clone().acquire_owned().await.map_err(closed)?;
            (own, shared)
        };
        let password = password.to_owned();
        // The slot goes with the work: a call cancelled by its deadline
        // leaves the hash to finish, still counted.
        let computed = tokio::task::spawn_blocking(move || {
            let matched = compute(&checked, &password);
            drop(slot);
            matched
        })
        .await;
        match computed {
            Ok(matched) => matched,
            Err(_) => Err(PasswordError::MalformedHash(
                "the hash computation failed".into(),
            )),
        }
    }
}

/// Reads `hash` and holds it to `floors` and the host's ceilings.
fn check(hash: &str, floors: &PasswordConfig) -> Result<Checked, PasswordError> {
    let malformed = |what: &str| PasswordError::MalformedHash(what.to_string());
    if let Some(rest) = hash.strip_prefix("$2") {
        let cost = rest
            .get(2..4)
            .filter(|_| matches!(rest.as_bytes().first(), Some(b'a' | b'b' | b'x' | b'y')))
            .and_then(|digits| digits.parse::<u32>().ok())
            .ok_or_else(|| malformed("a bcrypt hash without a two-digit cost ($2b$NN$...)"))?;
        return at_least("bcrypt cost", cost, floors.bcrypt_min_cost)
            .and(at_most("bcrypt cost", cost, BCRYPT_MAX_COST))
            .map(|()| Checked::Bcrypt(hash.to_string()));
    }
    if let Some((rounds, salt, hash)) = passlib_pbkdf2(hash)? {
        pbkdf2_rounds(rounds.get().into(), floors)?;
        return Ok(Checked::PasslibPbkdf2 { rounds, salt, hash });
    }
    let phc = PasswordHash::new(hash).map_err(|e| {
        PasswordError::MalformedHash(format!("not a PHC string, bcrypt or passlib hash ({e})"))
    })?;
    let param = |name: &str| -> Result<u64, PasswordError> {
        phc.params.get_decimal(name).map(u64::from).ok_or_else(|| {
            malformed(&format!(
                "{} hash without its {name} parameter",
                phc.algorithm
            ))
        })
    };
    match phc.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => {
            let (memory, passes) = (param("m")?, param("t")?);
            at_least("argon2 memory (KiB)", memory, floors.argon2_min_memory_kib)?;
            at_least("argon2 iterations", passes, floors.argon2_min_iterations)?;
            at_most("argon2 memory (KiB)", memory, ARGON2_MAX_MEMORY_KIB)?;
            at_most(
                "argon2 memory times iterations",
                memory * passes,
                ARGON2_MAX_WORK,
            )?;
        }
        "scrypt" => {
            let (log_n, r, p) = (param("ln")?, param("r")?, param("p")?);
            at_least("scrypt ln", log_n, floors.scrypt_min_log_n)?;
            let memory = |log_n: u64| {
                1u64.checked_shl(u32::try_from(log_n).unwrap_or(u32::MAX))
                    .and_then(|n| n.checked_mul(128u64.saturating_mul(r)))
                    .unwrap_or(u64::MAX)
            };
            // The floor is on memory (OWASP's r = 8): N alone would let
            // r = 1 pass at an eighth of it.
            let floor = 1u64
                .checked_shl(floors.scrypt_min_log_n.into())
                .map_or(u64::MAX, |n| n.saturating_mul(128 * 8));
            at_least("scrypt memory (128·r·2^ln bytes)", memory(log_n), floor)?;
            let total = memory(log_n).saturating_mul(p.max(1));
            at_most(
                "scrypt memory (128·r·2^ln·p bytes)",
                total,
                SCRYPT_MAX_BYTES,
            )?;
        }
        "pbkdf2-sha256" => {
            pbkdf2_rounds(param("i")?, floors)?;
        }
        other => {
            return Err(malformed(&format!(
                "the algorithm {other:?} is not one the host checks (argon2id, argon2i, argon2d, scrypt, pbkdf2-sha256, bcrypt)"
            )));
        }
    }
    Ok(Checked::Phc(hash.to_string()))
}

/// The rounds, salt and hash of passlib's
/// `$pbkdf2-sha256$<rounds>$<salt>$<hash>`, if `hash` is one (RustCrypto's
/// PHC form has `i=` where passlib has a bare number).
type PasslibPbkdf2 = (NonZeroU32, Vec<u8>, Vec<u8>);

fn passlib_pbkdf2(hash: &str) -> Result<Option<PasslibPbkdf2>, PasswordError> {
    let Some(rest) = hash.strip_prefix("$pbkdf2-sha256$") else {
        return Ok(None);
    };
    let mut parts = rest.split('$');
    let (Some(rounds), Some(salt), Some(digest), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    let Ok(rounds) = rounds.parse::<NonZeroU32>() else {
        return Ok(None);
    };
    let decode = |text: &str, what: &str| {
        passlib_base64().decode(text).map_err(|_| {
            PasswordError::MalformedHash(format!("a passlib pbkdf2 {what} that is not its base64"))
        })
    };
    let (salt, hash) = (decode(salt, "salt")?, decode(digest, "hash")?);
    if hash.is_empty() || hash.len() > 64 {
        return Err(PasswordError::MalformedHash(
            "a passlib pbkdf2 hash of an odd length".into(),
        ));
    }
    Ok(Some((rounds, salt, hash)))
}

/// passlib's "adapted base64": the standard alphabet with `.` for `+`, no
/// padding.
fn passlib_base64() -> GeneralPurpose {
    const ADAPTED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./";
    // A constant alphabet of 64 distinct characters: building it cannot fail.
    let alphabet = Alphabet::new(ADAPTED).unwrap_or(base64::alphabet::STANDARD);
    let config = GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    GeneralPurpose::new(&alphabet, config)
}

/// Computes the hash of `password` and compares, in constant time.
fn compute(checked: &Checked, password: &str) -> Result<bool, PasswordError> {
    match checked {
        // bcrypt's errors quote the hash: never shown.
        Checked::Bcrypt(hash) => bcrypt::verify(password, hash)
            .map_err(|_| PasswordError::MalformedHash("not a well-formed bcrypt hash".into())),
        Checked::PasslibPbkdf2 { rounds, salt, hash } => Ok(aws_lc_rs::pbkdf2::verify(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            *rounds,
            salt,
            password.as_bytes(),
            hash,
        )
        .is_ok()),
        Checked::Phc(text) => {
            let hash = PasswordHash::new(text)
                .map_err(|e| PasswordError::MalformedHash(format!("not a PHC string ({e})")))?;
            let verified = match hash.algorithm.as_str() {
                "scrypt" => scrypt::Scrypt.verify_password(password.as_bytes(), &hash),
                "pbkdf2-sha256" => pbkdf2::Pbkdf2.verify_password(password.as_bytes(), &hash),
                _ => argon2::Argon2::default().verify_password(password.as_bytes(), &hash),
            };
            match verified {
                Ok(()) => Ok(true),
                Err(password_hash::Error::Password) => Ok(false),
                Err(other) => Err(PasswordError::MalformedHash(format!(
                    "{} hash: {other}",
                    hash.algorithm
                ))),
            }
        }
    }
}

/// pbkdf2-sha256's rounds, in either form, held to the floor and ceiling.
fn pbkdf2_rounds(rounds: u64, floors: &PasswordConfig) -> Result<(), PasswordError> {
    at_least("pbkdf2 iterations", rounds, floors.pbkdf2_min_iterations)?;
    at_most("pbkdf2 iterations", rounds, PBKDF2_MAX_ITERATIONS)
}

fn at_least(what: &str, value: impl Into<u64>, floor: impl Into<u64>) -> Result<(), PasswordError> {
    let (value, floor) = (value.into(), floor.into());
    if value < floor {
        return Err(PasswordError::TooCheap(format!(
            "{what} {value} is below the floor of {floor}"
        )));
    }
    Ok(())
}

fn at_most(
    what: &str,
    value: impl Into<u64>,
    ceiling: impl Into<u64>,
) -> Result<(), PasswordError> {
    let (value, ceiling) = (value.into(), ceiling.into());
    if value > ceiling {
        return Err(PasswordError::MalformedHash(format!(
            "{what} {value} is above the host's ceiling of {ceiling}"
        )));
    }
    Ok(())
}

impl Host for CallState {
    async fn verify(&mut self, password: String, hash: String) -> Result<bool, PasswordError> {
        let Some(passwords) = self.grants().and_then(|grants| grants.password()) else {
            return Err(PasswordError::MalformedHash(
                "the password capability answers in authorize, not in init".into(),
            ));
        };
        passwords.verify(&password, &hash).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RIGHT: &str = "correct horse battery staple";
    const WRONG: &str = "Tr0ub4dor&3";

    /// Known answers from independent implementations: argon2-cffi
    /// (libargon2), pyca bcrypt, passlib 1.7.4 and Python's hashlib, each
    /// checked again by a pure-Python implementation. The password is
    /// [`RIGHT`]; each entry holds its algorithm's floor.
    const VECTORS: &[(&str, &str)] = &[
        (
            "argon2id",
            "$argon2id$v=19$m=19456,t=2,p=1$bLmcjXHO10ZkfYup/Ctb3w$ABN5U8dtkmbExkmxFbqLMUhgQQy0wxf+dcAc0A5mEEM",
        ),
        (
            "argon2i",
            "$argon2i$v=19$m=19456,t=2,p=1$Ol42eW8PUhxvGtiyAVgQbw$1fEEJaCzVj5+VyasA80dcasjxAOGD/M7R8aiJyNnUto",
        ),
        (
            "bcrypt 2b",
            "$2b$10$C52M1mRTgFHJKAJJGqbWzudbh7k7Lam9JFkL8z/bawnbZNcukf.tm",
        ),
        (
            "bcrypt 2a",
            "$2a$10$ho2krHEAHwE7XXEvlQwEM./52qPjKUm2PxBystfoByIex1a0/p4VW",
        ),
        (
            "bcrypt 2y",
            "$2y$10$zcr36Ic7NtL7CbXCJrsi8eQUxLXzBbXZ5DpVyJnO3Dno.hqvV8br2",
        ),
        (
            "scrypt (passlib)",
            "$scrypt$ln=15,r=8,p=1$AKAUgtD6X4tR6l1rjVEq5Q$6G3Ae1Kzk0MVprbAhMZrevT/HTG+dEkSRb195GPHVcY",
        ),
        (
            "scrypt (PHC)",
            "$scrypt$ln=15,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$eo40JB24mNWRdcaWU4xBdGepdf/laQaEJfFhiNMVnFg",
        ),
        (
            "pbkdf2-sha256 (passlib)",
            "$pbkdf2-sha256$600000$5rzXek8JIQSglDKGUEppjQ$5CkIMaOzyHlQr5oAX784Lr03vlY6syy4X07cVR9iw7U",
        ),
        (
            "pbkdf2-sha256 (PHC)",
            "$pbkdf2-sha256$i=600000,l=32$AAECAwQFBgcICQoLDA0ODw$7xdxRO7JQgy8EJPSqLNEqSvFBtDU7JwCjdGfgyTYweY",
        ),
    ];

    /// The same generators' hashes below OWASP's floors.
    const CHEAP: &[(&str, &str)] = &[
        (
            "argon2 memory",
            "$argon2id$v=19$m=4096,t=1,p=1$4JW+ry+49bfgqeDb3a+Wvg$4xd/c4bmneg9ePALga8XxdFwnNaGRTgJTTEgtQ2+TkQ",
        ),
        (
            "bcrypt cost",
            "$2b$04$r85m8DnYcYtjj1qsGxri4OHd6npioMsol6lYwEhQLA43dmKXXqtBO",
        ),
        (
            "scrypt ln",
            "$scrypt$ln=10,r=8,p=1$u9c65xzDWMvZmxPCOAcgRA$EeIx4OBlCJynO+dcjlBvwHXmVItf7W9ngGrdMk1Ud4Y",
        ),
        (
            "pbkdf2 iterations",
            "$pbkdf2-sha256$29000$wPg/R4iR8p4TAuB8b21tzQ$lmrJTskMVA71G2wCmFYSI0.40vBKwipP900Z8zpWaYw",
        ),
        (
            "pbkdf2 iterations",
            "$pbkdf2-sha256$i=29000,l=32$AAECAwQFBgcICQoLDA0ODw$m/kLywdyNwK9GV2kWntRGvZzmeiVsuqehNWlLst2eWY",
        ),
    ];

    fn passwords(floors: PasswordConfig) -> Passwords {
        Passwords::new(floors, Arc::new(Semaphore::new(2)), 2)
    }

    #[tokio::test]
    async fn known_hashes_of_every_algorithm_verify_the_right_password_only() {
        let passwords = passwords(PasswordConfig::default());
        for (name, hash) in VECTORS {
            assert_eq!(passwords.verify(RIGHT, hash).await, Ok(true), "{name}");
            assert_eq!(passwords.verify(WRONG, hash).await, Ok(false), "{name}");
        }
    }

    #[tokio::test]
    async fn hashes_below_the_floor_are_refused_and_a_lower_floor_admits_them() {
        let strict = passwords(PasswordConfig::default());
        for (parameter, hash) in CHEAP {
            match strict.verify(RIGHT, hash).await {
                Err(PasswordError::TooCheap(why)) => assert!(why.contains(parameter), "{why}"),
                other => panic!("{parameter}: {other:?}"),
            }
        }
        let lenient = passwords(PasswordConfig {
            argon2_min_memory_kib: 4096,
            argon2_min_iterations: 1,
            bcrypt_min_cost: 4,
            scrypt_min_log_n: 10,
            pbkdf2_min_iterations: 10_000,
        });
        for (parameter, hash) in CHEAP {
            assert_eq!(lenient.verify(RIGHT, hash).await, Ok(true), "{parameter}");
            assert_eq!(lenient.verify(WRONG, hash).await, Ok(false), "{parameter}");
        }
    }

    #[tokio::test]
    async fn a_shadow_never_waits_for_a_hashing_slot_and_errors_never_quote_a_hash() {
        let slots = Arc::new(Semaphore::new(1));
        let passwords = Passwords::new(PasswordConfig::default(), slots.clone(), 1);
        let shadow = passwords.for_shadow();
        let busy = slots.clone().try_acquire_owned().unwrap();
        let refused = shadow.verify(RIGHT, VECTORS[2].1).await;
        assert!(
            matches!(refused, Err(PasswordError::MalformedHash(why)) if why.contains("shadow"))
        );
        drop(busy);
        assert_eq!(shadow.verify(RIGHT, VECTORS[2].1).await, Ok(true));
        // bcrypt's own error quotes the hash; ours does not.
        let truncated = &VECTORS[2].1[..VECTORS[2].1.len() - 1];
        match passwords.verify(RIGHT, truncated).await {
            Err(PasswordError::MalformedHash(why)) => assert!(!why.contains("C52M1mRT"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn costly_and_malformed_hashes_are_refused_without_computing() {
        let floors = PasswordConfig::default();
        let refused = |hash: &str| match check(hash, &floors) {
            Err(PasswordError::MalformedHash(why)) => why,
            other => panic!("{hash}: {other:?}"),
        };
        assert!(refused("$argon2id$v=19$m=4194304,t=2,p=1$bLmcjXHO10ZkfYup/Ctb3w$ABN5U8dtkmbExkmxFbqLMUhgQQy0wxf+dcAc0A5mEEM").contains("ceiling"));
        assert!(
            refused("$2b$20$C52M1mRTgFHJKAJJGqbWzudbh7k7Lam9JFkL8z/bawnbZNcukf.tm")
                .contains("ceiling")
        );
        assert!(refused("$scrypt$ln=24,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$eo40JB24mNWRdcaWU4xBdGepdf/laQaEJfFhiNMVnFg").contains("ceiling"));
        let sha512 = refused("$sha512$rounds=5000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo");
        assert!(
            sha512.contains("\"sha512\" is not one the host checks"),
            "{sha512}"
        );
        assert!(refused("plaintext").contains("not a PHC string"));
        assert!(refused("$2b$x$abc").contains("bcrypt"));
        // scrypt's floor is on memory: r = 1 at ln = 15 is an eighth of it.
        let weak_r = "$scrypt$ln=15,r=1,p=1$AAECAwQFBgcICQoLDA0ODw$eo40JB24mNWRdcaWU4xBdGepdf/laQaEJfFhiNMVnFg";
        assert!(
            matches!(check(weak_r, &floors), Err(PasswordError::TooCheap(why)) if why.contains("scrypt memory"))
        );
        // A refusal never quotes the hash.
        let hash = VECTORS[0].1.replace("m=19456", "m=oops");
        assert!(!refused(&hash).contains("bLmcjXHO10ZkfYup"));
    }
}

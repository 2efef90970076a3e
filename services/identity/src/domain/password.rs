//! Passwords: the acceptance rules, and argon2id hashing with OWASP's parameters.

use std::fmt;
use std::sync::LazyLock;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use mercato_kernel::FieldError;

/// Fewest characters (Unicode scalar values, not bytes) in a password.
pub const MIN_CHARS: usize = 8;
/// Most characters in a password.
pub const MAX_CHARS: usize = 128;

/// OWASP Password Storage Cheat Sheet, argon2id: 19 MiB of memory, 2 passes, 1 lane.
pub const M_COST_KIB: u32 = 19_456;
/// Passes over memory.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// A password that passed the rules; never printed.
#[derive(Clone)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Checks length (8..=128 characters), control characters and the common-password list.
    pub fn parse(input: &str, field: &str) -> Result<Self, FieldError> {
        let chars = input.chars().count();
        if chars < MIN_CHARS {
            return Err(FieldError::new(
                field,
                "too_short",
                format!("at least {MIN_CHARS} characters"),
            ));
        }
        if chars > MAX_CHARS {
            return Err(FieldError::new(
                field,
                "too_long",
                format!("at most {MAX_CHARS} characters"),
            ));
        }
        if input.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                "invalid_characters",
                "no control characters",
            ));
        }
        if is_common(input) {
            return Err(FieldError::new(
                field,
                "too_common",
                "this password is too common; choose another",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// The password text, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Whether `password` is on the embedded list of common passwords (case-insensitive).
pub fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    COMMON.iter().any(|common| *common == lower)
}

fn argon2() -> Argon2<'static> {
    // The constants are valid parameters; `Params::DEFAULT` is the same OWASP set.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into an argon2id PHC string with a fresh random salt. CPU-bound
/// (tens of milliseconds): call it from a blocking thread.
pub fn hash(password: &str) -> anyhow::Result<String> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password failed: {e}"))
}

/// Whether `password` matches the PHC string `phc`; a malformed hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    argon2().verify_password(password.as_bytes(), phc).is_ok()
}

/// A hash of a random password, verified against when the account does not exist so that an
/// unknown email costs the same time as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut secret = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut secret);
    hash(&hex::encode(secret)).unwrap_or_default()
});

/// Computes the dummy hash now (at start), so the first unknown-email login is not slower.
pub async fn prepare() {
    let _ = tokio::task::spawn_blocking(|| DUMMY_HASH.len()).await;
}

/// Spends one verification on the dummy hash; always false.
pub fn verify_dummy(password: &str) -> bool {
    verify(password, &DUMMY_HASH);
    false
}

/// [`hash`] on tokio's blocking pool.
pub async fn hash_blocking(password: Password) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash(password.expose())).await?
}

/// [`verify`] (or [`verify_dummy`] without a hash) on tokio's blocking pool.
pub async fn verify_blocking(password: String, phc: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify(&password, &phc),
        None => verify_dummy(&password),
    })
    .await
    .unwrap_or(false)
}

/// Common passwords of 8 or more characters (shorter ones fail the length rule anyway), from
/// the public breach-frequency lists; compared lower-cased.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "pa$$word",
    "12345678",
    "123456789",
    "1234567890",
    "12345678910",
    "123123123",
    "11111111",
    "111111111",
    "1111111111",
    "00000000",
    "000000000",
    "88888888",
    "87654321",
    "987654321",
    "0987654321",
    "11223344",
    "12341234",
    "123456789a",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "1qaz2wsx3edc",
    "qwertyuiop",
    "qwerty123",
    "qwerty1234",
    "qwerty12",
    "qwertyui",
    "qazwsxedc",
    "zaq12wsx",
    "zxcvbnm1",
    "asdfghjkl",
    "asdfasdf",
    "abcd1234",
    "abc12345",
    "abcdefgh",
    "abcdefg1",
    "iloveyou",
    "iloveyou1",
    "iloveyou2",
    "sunshine",
    "sunshine1",
    "princess",
    "princess1",
    "football",
    "football1",
    "baseball",
    "basketball",
    "superman",
    "batman123",
    "starwars",
    "whatever",
    "trustno1",
    "welcome1",
    "welcome123",
    "letmein1",
    "letmein123",
    "changeme",
    "changeme1",
    "computer",
    "internet",
    "michelle",
    "jennifer",
    "jordan23",
    "liverpool",
    "chelsea1",
    "arsenal1",
    "manchester",
    "corvette",
    "mercedes",
    "ferrari1",
    "mustang1",
    "midnight",
    "charlie1",
    "danielle",
    "samantha",
    "jessica1",
    "butterfly",
    "chocolate",
    "cookie123",
    "pokemon1",
    "pokemon123",
    "minecraft",
    "fortnite",
    "master123",
    "dragon123",
    "monkey123",
    "shadow123",
    "killer123",
    "hello123",
    "hello1234",
    "helloworld",
    "secret123",
    "qwerty123456",
    "admin123",
    "admin1234",
    "administrator",
    "root1234",
    "rootroot",
    "toor1234",
    "test1234",
    "testtest",
    "testing123",
    "guest1234",
    "default1",
    "login123",
    "user1234",
    "access14",
    "freedom1",
    "lovely123",
    "blink182",
    "michael1",
    "anthony1",
    "jonathan",
    "nicholas",
    "alexander",
    "christopher",
    "elizabeth",
    "victoria",
    "metallica",
    "nirvana1",
    "spiderman",
    "pakistan",
    "password!",
    "password1!",
    "qwerty!@#",
    "1qaz@wsx",
    "!qaz2wsx",
    "zaq1xsw2",
    "q1w2e3r4",
    "q1w2e3r4t5",
    "a1b2c3d4",
    "aa123456",
    "aaaaaaaa",
    "asdf1234",
    "zxcv1234",
    "1234qwer",
    "mercato1",
    "mercato123",
    "letmeinnow",
    "summer2024",
    "summer2025",
    "summer2026",
    "winter2025",
    "winter2026",
    "spring2026",
    "autumn2026",
    "123qweasd",
    "qweasdzxc",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(Password::parse("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}", "p").is_err());
        assert!(Password::parse("\u{e9}t\u{e9}-\u{e9}t\u{e9}-x", "p").is_ok());
        let max = "\u{1F600}".repeat(MAX_CHARS);
        assert!(
            Password::parse(&max, "p").is_ok(),
            "128 emoji are 512 bytes"
        );
        let over = "\u{1F600}".repeat(MAX_CHARS + 1);
        assert_eq!(Password::parse(&over, "p").unwrap_err().code, "too_long");
    }

    #[test]
    fn common_passwords_are_rejected_case_insensitively() {
        for common in ["password", "PassWord1", "QWERTYUIOP", "iloveyou"] {
            assert_eq!(Password::parse(common, "p").unwrap_err().code, "too_common");
        }
        assert!(
            COMMON
                .iter()
                .all(|p| p.chars().count() >= MIN_CHARS && *p == p.to_lowercase())
        );
        assert!(COMMON.len() >= 100);
    }

    #[test]
    fn control_characters_are_rejected() {
        assert!(Password::parse("abc\0defghij", "p").is_err());
    }

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("wrong horse battery", &phc));
        assert!(!verify("anything", "not a hash"));
        assert!(!verify_dummy("anything"));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let password = Password::parse("a-long-secret", "p").unwrap();
        assert_eq!(format!("{password:?}"), "Password(***)");
    }
}

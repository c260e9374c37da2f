//! Tokens the server hands out and must get back unaltered (shard iterators, pagination tokens):
//! a JSON payload followed by an HMAC-SHA256 of it, base64-encoded. The key is random, so a token
//! cannot be forged or edited to read another stream or shard. A durable engine keeps the key in
//! its data directory, so iterators handed out before a restart still work after it (until they
//! expire), as they do across Kinesis's own failovers; an in-memory engine's key lives as long as
//! the server.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

const MAC_BYTES: usize = 32;

/// The key's file in a durable engine's data directory.
const KEY_FILE: &str = "token-key";

/// Seals and opens tokens with this server's key.
#[derive(Clone)]
pub(crate) struct TokenSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner { .. }")
    }
}

impl TokenSigner {
    /// A signer with a key of 32 bytes read from `/dev/urandom`.
    pub(crate) fn random() -> std::io::Result<Self> {
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        Ok(TokenSigner { key })
    }

    /// The signer whose key is kept in `data_dir`: read back if a server wrote it before, else
    /// made at random and stored (readable by the owner only; written to a temporary file and
    /// renamed, so a crash cannot leave half a key).
    pub(crate) fn kept_in(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                return Ok(TokenSigner { key });
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let signer = TokenSigner::random()?;
        std::fs::create_dir_all(data_dir)?;
        let temporary = data_dir.join(format!("{KEY_FILE}.tmp"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(&signer.key)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        Ok(signer)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts a 32-byte key"),
        }
    }

    /// The token for `payload`.
    pub(crate) fn seal<T: Serialize>(&self, payload: &T) -> String {
        // Serializing plain structs of strings and numbers cannot fail.
        let mut bytes = serde_json::to_vec(payload).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// The payload of a token this signer sealed; `None` for anything else.
    pub(crate) fn open<T: DeserializeOwned>(&self, token: &str) -> Option<T> {
        // Our tokens are a few hundred bytes; refuse to decode anything much larger.
        if token.len() > 4096 {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()?;
        let split = bytes.len().checked_sub(MAC_BYTES)?;
        let (payload, tag) = bytes.split_at(split);
        let mut mac = self.mac();
        mac.update(payload);
        mac.verify_slice(tag).ok()?;
        serde_json::from_slice(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Payload {
        shard: String,
    }

    #[test]
    fn opens_what_it_sealed_and_nothing_edited() {
        let signer = TokenSigner { key: [7; 32] };
        let token = signer.seal(&Payload {
            shard: "shardId-000000000001".into(),
        });
        assert_eq!(
            signer.open::<Payload>(&token),
            Some(Payload {
                shard: "shardId-000000000001".into()
            })
        );

        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(&token)
            .unwrap_or_default();
        // Turn shardId-...1 into shardId-...2 in the payload.
        if let Some(digit) = bytes.iter().rposition(|b| *b == b'1') {
            bytes[digit] = b'2';
        }
        let forged = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(signer.open::<Payload>(&forged), None);

        let other = TokenSigner { key: [8; 32] };
        assert_eq!(other.open::<Payload>(&token), None);
        assert_eq!(signer.open::<Payload>("not a token"), None);
        assert_eq!(signer.open::<Payload>(""), None);
    }
}

//! Tokens the server hands out and must get back unaltered (shard iterators, pagination tokens):
//! a JSON payload followed by an HMAC-SHA256 of it, base64-encoded. The key is random per server
//! start, so a token cannot be forged or edited to read another stream or shard; a restarted
//! server refuses older tokens, as a client must be ready for anyway (iterators expire).

use std::io::Read;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

const MAC_BYTES: usize = 32;

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

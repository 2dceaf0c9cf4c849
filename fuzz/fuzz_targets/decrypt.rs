//! The encrypted-content decryptor, with content built as Graph builds it from fuzzed parts — a
//! content key wrapped with the certificate's public key, AES-CBC ciphertext, its HMAC — or
//! with any of them replaced by fuzzed bytes or text. It never panics; whatever it accepts
//! carries a valid HMAC under a 32-byte key and encrypts back to the ciphertext; and content
//! made correctly always decrypts to its plaintext.
#![no_main]

use arbitrary::Arbitrary;
use base64::{Engine, engine::general_purpose::STANDARD};
use kehai_fuzz::{KEY, encrypt, sign_data};
use kehai_microsoft::notifications::{EncryptedContent, decrypt_with};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    content_key: ContentKey,
    data: Data,
    /// Fuzzed bytes instead of the ciphertext's HMAC.
    signature: Option<Vec<u8>>,
    /// Fuzzed text instead of any of the three base64 fields.
    text: Option<(u8, String)>,
}

#[derive(Arbitrary, Debug)]
enum ContentKey {
    /// A 32-byte AES key, wrapped as Graph wraps it.
    Aes([u8; 32]),
    /// Other bytes, wrapped as Graph wraps a key.
    Wrapped(Vec<u8>),
    /// Bytes that were never wrapped.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Data {
    /// A plaintext, encrypted with the content key when it is an AES key.
    Plain(Vec<u8>),
    /// Any ciphertext.
    Cipher(Vec<u8>),
}

fuzz_target!(|input: Input| {
    let (key_bytes, wrapped) = match &input.content_key {
        ContentKey::Aes(key) => (key.to_vec(), KEY.wrap(key)),
        ContentKey::Wrapped(bytes) => (bytes.clone(), KEY.wrap(bytes)),
        ContentKey::Raw(bytes) => (bytes.clone(), Some(bytes.clone())),
    };
    let Some(wrapped) = wrapped else { return };
    let (data, plain) = match (&input.data, &input.content_key) {
        (Data::Plain(plain), ContentKey::Aes(key)) => (encrypt(key, plain), Some(plain)),
        (Data::Plain(bytes) | Data::Cipher(bytes), _) => (bytes.clone(), None),
    };
    let signature = input.signature.clone().unwrap_or_else(|| sign_data(&key_bytes, &data));
    let mut content = EncryptedContent {
        data: STANDARD.encode(&data),
        data_signature: STANDARD.encode(&signature),
        data_key: STANDARD.encode(&wrapped),
        encryption_certificate_id: "fuzz".into(),
        encryption_certificate_thumbprint: None,
    };
    if let Some((which, text)) = &input.text {
        *[&mut content.data, &mut content.data_signature, &mut content.data_key][usize::from(which % 3)] = text.clone();
    }
    let made_right = input.signature.is_none() && input.text.is_none();
    match decrypt_with(&KEY.decryption, &content) {
        Ok(decrypted) => {
            let key: [u8; 32] = key_bytes.as_slice().try_into().expect("accepted content with a key of another size");
            assert!(input.text.is_none() || STANDARD.decode(&content.data).is_ok_and(|d| d == data));
            assert_eq!(signature, sign_data(&key, &data), "accepted content with a wrong HMAC");
            assert_eq!(encrypt(&key, &decrypted), data, "the plaintext does not encrypt back to the ciphertext");
            if let Some(plain) = plain {
                assert_eq!(&decrypted, plain);
            }
        }
        Err(e) => assert!(!(made_right && plain.is_some()), "content made as Graph makes it was refused: {e}"),
    }
});

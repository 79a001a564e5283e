//! Decoding of the two protobuf request bodies kubectl's typed clients send and the server
//! must accept (k8s-api-surface.md §6): `SelfSubjectAccessReview` (`kubectl auth can-i`)
//! and `TokenRequest` (`kubectl create token`). Answering 415 makes those commands fail.
//!
//! The body is the magic `k8s\0` followed by a `runtime.Unknown` message
//! `{1 typeMeta{1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType}` whose `raw`
//! holds the object. Only the fields the simulator uses are decoded; unknown fields are
//! skipped as protobuf requires. Every length is checked, so malformed input is an error,
//! never a panic. The results are JSON objects shaped like the JSON bodies of the same
//! requests, so the server handles both encodings with one code path.

use serde_json::{Map, Value, json};

pub const PROTOBUF_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("protobuf body does not start with the Kubernetes magic bytes \"k8s\\x00\"")]
    MissingMagic,
    #[error("protobuf body is truncated at byte {0}")]
    Truncated(usize),
    #[error("protobuf body has a varint longer than 10 bytes at byte {0}")]
    VarintTooLong(usize),
    #[error("protobuf body has an invalid field tag at byte {0}")]
    InvalidTag(usize),
    #[error("protobuf body uses unsupported wire type {wire_type} at byte {at}")]
    UnsupportedWireType { wire_type: u64, at: usize },
    #[error("protobuf field {field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("protobuf body carries no object (runtime.Unknown has no raw field)")]
    NoObject,
    #[error("protobuf body holds a {found}, expected a {expected}")]
    WrongKind {
        found: String,
        expected: &'static str,
    },
    #[error("protobuf body uses content encoding {0:?}, which is not supported")]
    ContentEncoding(String),
}

/// One decoded field: its number and value.
enum FieldValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// fixed32/fixed64: skipped by every message decoded here.
    Fixed,
}

/// A protobuf message reader over a byte slice; `base` keeps error offsets absolute.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let start = self.base + self.pos;
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(ProtoError::Truncated(self.base + self.pos));
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError::VarintTooLong(start))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ProtoError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&end| end <= self.buf.len())
            .ok_or(ProtoError::Truncated(self.base + self.buf.len()))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next field, or `None` at the end of the message.
    fn field(&mut self) -> Result<Option<(u64, FieldValue<'a>, usize)>, ProtoError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.base + self.pos;
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(ProtoError::InvalidTag(at));
        }
        let value = match tag & 7 {
            0 => FieldValue::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                FieldValue::Fixed
            }
            2 => {
                let len = self.varint()?;
                let offset = self.base + self.pos;
                return Ok(Some((number, FieldValue::Bytes(self.take(len)?), offset)));
            }
            5 => {
                self.take(4)?;
                FieldValue::Fixed
            }
            wire_type => return Err(ProtoError::UnsupportedWireType { wire_type, at }),
        };
        Ok(Some((number, value, at)))
    }
}

fn string(bytes: &[u8], field: &'static str) -> Result<String, ProtoError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtoError::InvalidUtf8 { field })
}

/// Walks one message: length-delimited fields go to `on_bytes` (with their absolute offset,
/// for nested decoding), varints to `on_varint`; fixed-width fields are skipped.
fn each_field<'a>(
    buf: &'a [u8],
    base: usize,
    mut on_bytes: impl FnMut(u64, &'a [u8], usize) -> Result<(), ProtoError>,
    mut on_varint: impl FnMut(u64, u64),
) -> Result<(), ProtoError> {
    let mut r = Reader::new(buf, base);
    while let Some((number, value, offset)) = r.field()? {
        match value {
            FieldValue::Bytes(b) => on_bytes(number, b, offset)?,
            FieldValue::Varint(v) => on_varint(number, v),
            FieldValue::Fixed => {}
        }
    }
    Ok(())
}

struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    raw_offset: usize,
}

fn envelope(body: &[u8]) -> Result<Envelope<'_>, ProtoError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtoError::MissingMagic)?;
    let mut env = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        raw_offset: 0,
    };
    let mut raw = None;
    let mut encoding = String::new();
    each_field(
        rest,
        MAGIC.len(),
        |number, bytes, offset| {
            match number {
                1 => each_field(
                    bytes,
                    offset,
                    |n, b, _| {
                        match n {
                            1 => env.api_version = string(b, "typeMeta.apiVersion")?,
                            2 => env.kind = string(b, "typeMeta.kind")?,
                            _ => {}
                        }
                        Ok(())
                    },
                    |_, _| {},
                )?,
                2 => raw = Some((bytes, offset)),
                3 => encoding = string(bytes, "contentEncoding")?,
                _ => {}
            }
            Ok(())
        },
        |_, _| {},
    )?;
    if !encoding.is_empty() {
        return Err(ProtoError::ContentEncoding(encoding));
    }
    let (raw, raw_offset) = raw.ok_or(ProtoError::NoObject)?;
    env.raw = raw;
    env.raw_offset = raw_offset;
    Ok(env)
}

fn check_kind(env: &Envelope<'_>, expected: &'static str) -> Result<(), ProtoError> {
    if env.kind.is_empty() || env.kind == expected {
        Ok(())
    } else {
        Err(ProtoError::WrongKind {
            found: env.kind.clone(),
            expected,
        })
    }
}

/// ObjectMeta: name, generateName, namespace, labels and annotations are all a create
/// request can meaningfully carry for these review types.
fn object_meta(buf: &[u8], base: usize) -> Result<Value, ProtoError> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    each_field(
        buf,
        base,
        |number, bytes, offset| {
            match number {
                1 => {
                    meta.insert("name".into(), string(bytes, "metadata.name")?.into());
                }
                2 => {
                    let v = string(bytes, "metadata.generateName")?;
                    meta.insert("generateName".into(), v.into());
                }
                3 => {
                    let v = string(bytes, "metadata.namespace")?;
                    meta.insert("namespace".into(), v.into());
                }
                11 | 12 => {
                    let (mut k, mut v) = (String::new(), String::new());
                    each_field(
                        bytes,
                        offset,
                        |n, b, _| {
                            match n {
                                1 => k = string(b, "metadata map key")?,
                                2 => v = string(b, "metadata map value")?,
                                _ => {}
                            }
                            Ok(())
                        },
                        |_, _| {},
                    )?;
                    let target = if number == 11 {
                        &mut labels
                    } else {
                        &mut annotations
                    };
                    target.insert(k, v.into());
                }
                _ => {}
            }
            Ok(())
        },
        |_, _| {},
    )?;
    meta.retain(|_, v| v.as_str().is_some_and(|s| !s.is_empty()));
    if !labels.is_empty() {
        meta.insert("labels".into(), labels.into());
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), annotations.into());
    }
    Ok(Value::Object(meta))
}

/// Decodes the string fields `names[i]` = field number i+1 of a flat message, omitting empty
/// ones like Go's `omitempty`.
fn string_fields(
    buf: &[u8],
    base: usize,
    names: &'static [&'static str],
) -> Result<Value, ProtoError> {
    let mut out = Map::new();
    each_field(
        buf,
        base,
        |number, bytes, _| {
            let name = usize::try_from(number)
                .ok()
                .and_then(|n| names.get(n.wrapping_sub(1)));
            if let Some(name) = name {
                let v = string(bytes, name)?;
                if !v.is_empty() {
                    out.insert((*name).to_string(), v.into());
                }
            }
            Ok(())
        },
        |_, _| {},
    )?;
    Ok(Value::Object(out))
}

/// `authorization.k8s.io/v1` SelfSubjectAccessReview from a protobuf body, as the JSON the
/// same request would have carried.
pub fn decode_self_subject_access_review(body: &[u8]) -> Result<Value, ProtoError> {
    const RESOURCE_ATTRIBUTES: &[&str] = &[
        "namespace",
        "verb",
        "group",
        "version",
        "resource",
        "subresource",
        "name",
    ];
    const NON_RESOURCE_ATTRIBUTES: &[&str] = &["path", "verb"];
    let env = envelope(body)?;
    check_kind(&env, "SelfSubjectAccessReview")?;
    let mut metadata = json!({});
    let mut spec = Map::new();
    each_field(
        env.raw,
        env.raw_offset,
        |number, bytes, offset| {
            match number {
                1 => metadata = object_meta(bytes, offset)?,
                2 => each_field(
                    bytes,
                    offset,
                    |n, b, o| {
                        match n {
                            1 => {
                                let v = string_fields(b, o, RESOURCE_ATTRIBUTES)?;
                                spec.insert("resourceAttributes".into(), v);
                            }
                            2 => {
                                let v = string_fields(b, o, NON_RESOURCE_ATTRIBUTES)?;
                                spec.insert("nonResourceAttributes".into(), v);
                            }
                            _ => {}
                        }
                        Ok(())
                    },
                    |_, _| {},
                )?,
                _ => {}
            }
            Ok(())
        },
        |_, _| {},
    )?;
    Ok(json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": metadata,
        "spec": spec,
        "status": {"allowed": false},
    }))
}

/// `authentication.k8s.io/v1` TokenRequest from a protobuf body, as the JSON the same
/// request would have carried.
pub fn decode_token_request(body: &[u8]) -> Result<Value, ProtoError> {
    const BOUND_OBJECT_REF: &[&str] = &["kind", "apiVersion", "name", "uid"];
    let env = envelope(body)?;
    check_kind(&env, "TokenRequest")?;
    let mut metadata = json!({});
    let mut audiences = Vec::new();
    let mut expiration: Option<i64> = None;
    let mut bound = None;
    each_field(
        env.raw,
        env.raw_offset,
        |number, bytes, offset| {
            match number {
                1 => metadata = object_meta(bytes, offset)?,
                2 => each_field(
                    bytes,
                    offset,
                    |n, b, o| {
                        match n {
                            1 => audiences.push(Value::from(string(b, "spec.audiences")?)),
                            3 => bound = Some(string_fields(b, o, BOUND_OBJECT_REF)?),
                            _ => {}
                        }
                        Ok(())
                    },
                    // int64 travels as the two's complement varint.
                    |n, v| {
                        if n == 4 {
                            expiration = Some(v as i64);
                        }
                    },
                )?,
                _ => {}
            }
            Ok(())
        },
        |_, _| {},
    )?;
    let mut spec = Map::new();
    spec.insert("audiences".into(), Value::Array(audiences));
    if let Some(e) = expiration {
        spec.insert("expirationSeconds".into(), e.into());
    }
    if let Some(b) = bound {
        spec.insert("boundObjectRef".into(), b);
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": metadata,
        "spec": spec,
        "status": {"token": "", "expirationTimestamp": null},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    // Hand-written protobuf encoding, the way the gogo-generated marshallers of
    // k8s.io/api write it (empty strings included for non-pointer fields).
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn bytes_field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(number << 3 | 2, &mut out);
        varint(payload.len() as u64, &mut out);
        out.extend_from_slice(payload);
        out
    }
    fn str_field(number: u64, s: &str) -> Vec<u8> {
        bytes_field(number, s.as_bytes())
    }
    fn varint_field(number: u64, v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(number << 3, &mut out);
        varint(v, &mut out);
        out
    }
    fn envelope_body(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [str_field(1, api_version), str_field(2, kind)].concat();
        let unknown = [
            bytes_field(1, &type_meta),
            bytes_field(2, raw),
            str_field(3, ""),
            str_field(4, ""),
        ]
        .concat();
        [MAGIC.to_vec(), unknown].concat()
    }

    /// `kubectl auth can-i list services` in namespace default.
    fn recorded_can_i_list_services() -> Vec<u8> {
        let attrs = [
            str_field(1, "default"),
            str_field(2, "list"),
            str_field(3, ""),
            str_field(4, ""),
            str_field(5, "services"),
            str_field(6, ""),
            str_field(7, ""),
        ]
        .concat();
        let spec = bytes_field(1, &attrs);
        let raw = [
            bytes_field(1, &[]),
            bytes_field(2, &spec),
            bytes_field(3, &[0x08, 0x00]),
        ]
        .concat();
        envelope_body("authorization.k8s.io/v1", "SelfSubjectAccessReview", &raw)
    }

    /// `kubectl create token sa --audience=foo --duration=10m`.
    fn recorded_create_token() -> Vec<u8> {
        let spec = [str_field(1, "foo"), varint_field(4, 600)].concat();
        let raw = [
            bytes_field(1, &[]),
            bytes_field(2, &spec),
            bytes_field(3, &bytes_field(2, &[])),
        ]
        .concat();
        envelope_body("authentication.k8s.io/v1", "TokenRequest", &raw)
    }

    #[test]
    fn recorded_can_i_list_services_decodes_to_resource_attributes() {
        let got = decode_self_subject_access_review(&recorded_can_i_list_services()).unwrap();
        assert_eq!(
            got,
            json!({"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1",
                   "metadata":{},
                   "spec":{"resourceAttributes":{"namespace":"default","verb":"list","resource":"services"}},
                   "status":{"allowed":false}})
        );
    }

    #[test]
    fn non_resource_attributes_and_metadata_decode() {
        let meta = [
            str_field(1, "n"),
            str_field(3, "ns"),
            bytes_field(11, &[str_field(1, "k"), str_field(2, "v")].concat()),
        ]
        .concat();
        let spec = bytes_field(2, &[str_field(1, "/healthz"), str_field(2, "get")].concat());
        let raw = [bytes_field(1, &meta), bytes_field(2, &spec)].concat();
        let got = decode_self_subject_access_review(&envelope_body("", "", &raw)).unwrap();
        assert_eq!(
            got["spec"],
            json!({"nonResourceAttributes":{"path":"/healthz","verb":"get"}})
        );
        assert_eq!(
            got["metadata"],
            json!({"name":"n","namespace":"ns","labels":{"k":"v"}})
        );
    }

    #[test]
    fn recorded_create_token_with_audience_and_duration_decodes() {
        let got = decode_token_request(&recorded_create_token()).unwrap();
        assert_eq!(got["kind"], "TokenRequest");
        assert_eq!(got["apiVersion"], "authentication.k8s.io/v1");
        assert_eq!(
            got["spec"],
            json!({"audiences":["foo"],"expirationSeconds":600})
        );
    }

    #[test]
    fn token_request_without_audience_has_empty_audiences_and_bound_ref_decodes() {
        let bound = [
            str_field(1, "Pod"),
            str_field(2, "v1"),
            str_field(3, "p"),
            str_field(4, "u-1"),
        ]
        .concat();
        let spec = [bytes_field(3, &bound), varint_field(4, 3600)].concat();
        let raw = bytes_field(2, &spec);
        let got = decode_token_request(&envelope_body("", "TokenRequest", &raw)).unwrap();
        assert_eq!(
            got["spec"],
            json!({"audiences":[],"expirationSeconds":3600,
                   "boundObjectRef":{"kind":"Pod","apiVersion":"v1","name":"p","uid":"u-1"}})
        );
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let mut spec = vec![];
        spec.extend(varint_field(9, 7));
        spec.extend([0x51, 1, 2, 3, 4, 5, 6, 7, 8]); // field 10, fixed64
        spec.extend([0x5d, 1, 2, 3, 4]); // field 11, fixed32
        spec.extend(str_field(1, "foo"));
        let raw = bytes_field(2, &spec);
        let got = decode_token_request(&envelope_body("", "", &raw)).unwrap();
        assert_eq!(got["spec"], json!({"audiences":["foo"]}));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let ssar = recorded_can_i_list_services();
        assert_eq!(
            decode_self_subject_access_review(b"{\"kind\":\"x\"}"),
            Err(ProtoError::MissingMagic)
        );
        assert_eq!(
            decode_self_subject_access_review(MAGIC),
            Err(ProtoError::NoObject)
        );
        assert!(matches!(
            decode_token_request(&ssar),
            Err(ProtoError::WrongKind { .. })
        ));
        let mut bad_utf8 = MAGIC.to_vec();
        bad_utf8.extend(bytes_field(
            2,
            &bytes_field(1, &bytes_field(1, &[0xff, 0xfe])),
        ));
        assert!(matches!(
            decode_self_subject_access_review(&bad_utf8),
            Err(ProtoError::InvalidUtf8 { .. })
        ));
        let mut long_varint = MAGIC.to_vec();
        long_varint.extend([0x08; 1]);
        long_varint.extend([0xff; 11]);
        assert!(matches!(
            decode_token_request(&long_varint),
            Err(ProtoError::VarintTooLong(_))
        ));
        let mut group = MAGIC.to_vec();
        group.push(0x0b); // field 1, wire type 3 (start group)
        assert!(matches!(
            decode_token_request(&group),
            Err(ProtoError::UnsupportedWireType { wire_type: 3, .. })
        ));
        let mut huge_len = MAGIC.to_vec();
        huge_len.push(0x12);
        huge_len.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(matches!(
            decode_token_request(&huge_len),
            Err(ProtoError::Truncated(_))
        ));
        let mut zero_tag = MAGIC.to_vec();
        zero_tag.push(0x00);
        assert!(matches!(
            decode_token_request(&zero_tag),
            Err(ProtoError::InvalidTag(4))
        ));
        let mut gzip = MAGIC.to_vec();
        gzip.extend(bytes_field(2, &[]));
        gzip.extend(str_field(3, "gzip"));
        assert!(matches!(
            decode_token_request(&gzip),
            Err(ProtoError::ContentEncoding(_))
        ));
    }

    #[test]
    fn every_truncation_before_the_end_of_raw_is_an_error() {
        for body in [recorded_can_i_list_services(), recorded_create_token()] {
            // The trailing contentEncoding/contentType fields are 4 bytes; cutting into or
            // before `raw` must fail.
            let raw_end = body.len() - 4;
            for cut in 0..raw_end {
                let prefix = &body[..cut];
                assert!(
                    decode_self_subject_access_review(prefix).is_err(),
                    "ssar prefix {cut}"
                );
                assert!(decode_token_request(prefix).is_err(), "token prefix {cut}");
            }
        }
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let mut rng = StdRng::seed_from_u64(0x6b38_7300);
        let seeds = [recorded_can_i_list_services(), recorded_create_token()];
        for i in 0..20_000 {
            let body: Vec<u8> = if i % 2 == 0 {
                let len = rng.random_range(0..64);
                let mut b = MAGIC.to_vec();
                b.extend((0..len).map(|_| rng.random::<u8>()));
                b
            } else {
                let mut b = seeds[i % 4 / 2].clone();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(MAGIC.len()..b.len());
                    b[at] = rng.random();
                }
                b
            };
            let _ = decode_self_subject_access_review(&body);
            let _ = decode_token_request(&body);
        }
    }
}

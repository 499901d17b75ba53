//! The envelope's fields as the checks need them, read from the body
//! without building the rest of it: each scalar as read, each container
//! skipped (without recursion, however deeply nested), and the first field
//! that appears twice.

use std::{borrow::Cow, fmt};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The fields a [`Notification`](crate::notification::Notification) has
/// types for but the inbox does not need.
#[cfg(feature = "axum")]
#[derive(Default)]
pub(super) struct Optional<'a> {
    pub(super) app_id: Option<Scalar<'a>>,
    pub(super) created_at: Option<Scalar<'a>>,
    pub(super) first_sent_at: Option<Scalar<'a>>,
    pub(super) delivery_attempts: Option<Scalar<'a>>,
    pub(super) delivery_status: Option<Scalar<'a>>,
    pub(super) delivered_at: Option<Scalar<'a>>,
    pub(super) self_url: Option<Scalar<'a>>,
}

/// The envelope's fields (`None`: absent), read without building the rest.
#[derive(Default)]
pub(super) struct Fields<'a> {
    pub(super) kind: Option<Scalar<'a>>,
    pub(super) id: Option<Scalar<'a>>,
    pub(super) topic: Option<Scalar<'a>>,
    pub(super) data: Option<Data<'a>>,
    /// The fields a [`Notification`](crate::notification::Notification)
    /// has types for but the inbox does not need.
    #[cfg(feature = "axum")]
    pub(super) optional: Optional<'a>,
    /// The first field that appeared twice.
    pub(super) duplicate: Option<&'static str>,
}

impl<'a> Fields<'a> {
    /// The slot of a top-level field the envelope reads, and its name.
    fn slot(&mut self, key: &str) -> Option<(&'static str, &mut Option<Scalar<'a>>)> {
        Some(match key {
            "type" => ("type", &mut self.kind),
            "id" => ("id", &mut self.id),
            "topic" => ("topic", &mut self.topic),
            #[cfg(feature = "axum")]
            "app_id" => ("app_id", &mut self.optional.app_id),
            #[cfg(feature = "axum")]
            "created_at" => ("created_at", &mut self.optional.created_at),
            #[cfg(feature = "axum")]
            "first_sent_at" => ("first_sent_at", &mut self.optional.first_sent_at),
            #[cfg(feature = "axum")]
            "delivery_attempts" => ("delivery_attempts", &mut self.optional.delivery_attempts),
            #[cfg(feature = "axum")]
            "delivery_status" => ("delivery_status", &mut self.optional.delivery_status),
            #[cfg(feature = "axum")]
            "delivered_at" => ("delivered_at", &mut self.optional.delivered_at),
            #[cfg(feature = "axum")]
            "self" => ("self", &mut self.optional.self_url),
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Fields::default();
                while let Some(Key(key)) = map.next_key()? {
                    let mut repeated = None;
                    if key == "data" {
                        if fields.data.is_some() {
                            repeated = Some("data");
                        } else {
                            fields.data = Some(map.next_value()?);
                            continue;
                        }
                    } else if let Some((name, slot)) = fields.slot(&key) {
                        if slot.is_some() {
                            repeated = Some(name);
                        } else {
                            *slot = Some(map.next_value()?);
                            continue;
                        }
                    }
                    // Skipped without recursion, however deeply nested.
                    map.next_value::<IgnoredAny>()?;
                    if fields.duplicate.is_none() {
                        fields.duplicate = repeated;
                    }
                }
                Ok(fields)
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// The `data` field: an object (whether it has an `item`, and its `type`),
/// or something else.
pub(super) enum Data<'a> {
    Object {
        kind: Option<Scalar<'a>>,
        item: bool,
        duplicate: Option<&'static str>,
    },
    Other,
}

impl<'de> Deserialize<'de> for Data<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DataVisitor;

        impl<'de> Visitor<'de> for DataVisitor {
            type Value = Data<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data<'de>, A::Error> {
                let (mut kind, mut item, mut duplicate) = (None, false, None);
                while let Some(Key(key)) = map.next_key()? {
                    match &*key {
                        "type" if kind.is_none() => {
                            kind = Some(map.next_value()?);
                            continue;
                        }
                        "item" if !item => item = true,
                        "type" => duplicate = duplicate.or(Some("data.type")),
                        "item" => duplicate = duplicate.or(Some("data.item")),
                        _ => {}
                    }
                    map.next_value::<IgnoredAny>()?;
                }
                Ok(Data::Object {
                    kind,
                    item,
                    duplicate,
                })
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Data::Other)
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Data<'de>, E> {
                Ok(Data::Other)
            }
        }

        deserializer.deserialize_any(DataVisitor)
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor).map(Key)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A field's value: a scalar as read, or only the kind of a container
/// (skipped without building it).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar<'a> {
    Null,
    Bool,
    Number(serde_json::Number),
    Str(Cow<'a, str>),
    Container,
}

#[cfg(feature = "axum")]
impl Scalar<'_> {
    /// Whether the envelope's own deserializer for the field (one of
    /// `lenient`'s) takes this value.
    pub(super) fn fits<T>(
        &self,
        read: impl FnOnce(&serde_json::Value) -> Result<T, serde_json::Error>,
    ) -> bool {
        let value = match self {
            Self::Null => serde_json::Value::Null,
            Self::Bool => serde_json::Value::Bool(true),
            Self::Number(n) => serde_json::Value::Number(n.clone()),
            Self::Str(text) => serde_json::Value::String(text.clone().into_owned()),
            Self::Container => serde_json::Value::Array(Vec::new()),
        };
        read(&value).is_ok()
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;

        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Bool)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Number(v.into()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Number(v.into()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
                // `None` only for NaN and the infinities, which JSON has not.
                Ok(serde_json::Number::from_f64(v).map_or(Scalar::Container, Scalar::Number))
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Container)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Container)
            }
        }

        deserializer.deserialize_any(ScalarVisitor)
    }
}

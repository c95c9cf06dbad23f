//! xenprov-core: the model and the pure logic shared by the installer, the repo server and the
//! guest tool. Nothing here touches a disk or the network; templates and APT's source lists are the only
//! things read.

/// Serde and JSON Schema for a type written as a string: `Display` out, `FromStr` in (its error
/// text says what is accepted), and the schema given.
macro_rules! string_serde {
    ($t:ty, $name:literal, $schema:tt) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                <String as serde::Deserialize>::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }

        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!($schema)
            }
        }
    };
}

pub mod answer;
pub mod apt_sources;
pub mod checksums;
#[cfg(feature = "clap")]
pub mod clap_help;
pub mod exit;
pub mod fleet;
pub mod gpt;
pub mod guest;
pub mod guest_net;
pub mod guest_render;
pub mod inventory;
pub mod net;
pub mod password;
pub mod payload;
pub mod plan;
pub mod reader;
pub mod render;
pub mod replace;
pub mod size;
pub mod text;
pub mod xen;

//! Enums that travel as fixed strings: stored in rows, named in requests and answers, matched
//! in filters. The strings are the contract (data already written and clients already built
//! use them); the enum is what the code names, so that a misspelt one does not compile.

/// Declares `pub enum $name` whose variants are written as the given strings, with
/// `as_str`, `parse` (the string back to its variant, `None` for any other), `ALL` (every
/// variant, in declaration order), `Display`, serde as the string, an OpenAPI `enum` of the
/// strings (feature `openapi`), and equality with a `&str` (tests compare with the string).
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:tt, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
        )]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in the order declared.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string it is stored and sent as.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The variant written as `text`; `None` for any other string.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

/// Checks what every string enum promises: each variant's string parses back to it, serde
/// writes and reads the same string, and no two variants share one.
#[cfg(test)]
pub(crate) fn assert_spelled_once<T>(all: &[T], as_str: fn(T) -> &'static str, parse: fn(&str) -> Option<T>)
where
    T: Copy + PartialEq + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    let mut seen = std::collections::HashSet::new();
    for &variant in all {
        let text = as_str(variant);
        assert!(seen.insert(text), "{text} is the string of two variants");
        assert_eq!(parse(text), Some(variant), "{text}");
        assert_eq!(serde_json::to_value(variant).unwrap(), serde_json::json!(text));
        assert_eq!(serde_json::from_value::<T>(serde_json::json!(text)).unwrap(), variant);
    }
    assert_eq!(parse(""), None);
}

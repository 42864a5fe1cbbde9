//! OpenAPI schemas of the domain types that travel on the wire (feature `openapi`, enabled only
//! by `onshi-api`). Each schema states exactly what the type's parsing constructor accepts, or
//! something stricter, so a client built from the document sends what the server takes.

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{RefOr, SchemaFormat};
use utoipa::{PartialSchema, ToSchema};

use crate::institution::{InstitutionCode, Prefecture, ScoreTable};
use crate::release::{Sha256, Target};
use crate::vendor::Vendor;
use crate::version::Version;

/// The pattern of a [`Version`]: 1–4 dotted parts of at most 9 digits (so each fits a `u32`).
pub const VERSION_PATTERN: &str = r"^[0-9]{1,9}(\.[0-9]{1,9}){0,3}$";

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
}

fn enumeration<'a>(description: &str, values: impl IntoIterator<Item = &'a str>) -> RefOr<Schema> {
    string(description)
        .enum_values(Some(values.into_iter().map(str::to_owned)))
        .into()
}

macro_rules! named {
    ($($ty:ty),* $(,)?) => {$(
        impl ToSchema for $ty {}
    )*};
}

named!(Version, Sha256, InstitutionCode, Prefecture, Target, Vendor);

impl PartialSchema for Version {
    fn schema() -> RefOr<Schema> {
        string(
            "Dotted numeric version, 1–4 parts. Compared numerically with missing parts as 0 \
             (`1.8` = `1.8.0` < `1.10`), which is what lets agents refuse a rollback.",
        )
        .pattern(Some(VERSION_PATTERN))
        .examples(["2.0.0"])
        .into()
    }
}

impl PartialSchema for Sha256 {
    fn schema() -> RefOr<Schema> {
        string("SHA-256 as 64 lower-case hex digits: a package's identity, file name and ETag.")
            .pattern(Some("^[0-9a-f]{64}$"))
            .into()
    }
}

impl PartialSchema for InstitutionCode {
    fn schema() -> RefOr<Schema> {
        institution_code(None).into()
    }
}

/// The schema of a 医療機関コード, of any 点数表 or of one. Its `format` names the check digit
/// (`institution-code`, or `institution-code-1` for 医科 codes, …), which no pattern of sensible
/// size can say; the pattern says everything else.
pub fn institution_code(table: Option<ScoreTable>) -> ObjectBuilder {
    let (digits, format) = match table {
        None => ("[1346]".to_owned(), "institution-code".to_owned()),
        Some(t) => (
            t.digit().to_string(),
            format!("institution-code-{}", t.digit()),
        ),
    };
    string(
        "医療機関コード: prefecture (2 digits, 01–47), 点数表 (1 医科, 3 歯科, 4 調剤, \
         6 訪問看護), 郡市区 (2), number (4) and a Luhn-style check digit over the first 9 \
         digits (from the right, weights 2,1,2,…; the digits of each product are added; check = \
         (10 − sum mod 10) mod 10). The pattern says all but the check digit.",
    )
    .pattern(Some(format!(
        "^(0[1-9]|[1-3][0-9]|4[0-7]){digits}[0-9]{{7}}$"
    )))
    .format(Some(SchemaFormat::Custom(format)))
    .examples(["0110113719", "2714206386"])
}

/// A prefecture as a query parameter: its number, Japanese name or English name.
pub fn prefecture_text() -> RefOr<Schema> {
    let names = Prefecture::all()
        .flat_map(|p| [p.name_ja().to_owned(), p.name_en().to_owned()])
        .chain((1..=47).map(|n| n.to_string()));
    string("A prefecture: its JIS number (1–47), Japanese name (東京都) or English name (Tokyo).")
        .enum_values(Some(names))
        .into()
}

impl PartialSchema for Prefecture {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .minimum(Some(1))
            .maximum(Some(47))
            .description(Some(
                "都道府県 as its JIS X 0401 number, 1 (北海道) to 47 (沖縄県).",
            ))
            .into()
    }
}

impl PartialSchema for Target {
    fn schema() -> RefOr<Schema> {
        let targets = std::iter::once(Target::Terminal)
            .chain(Vendor::ALL.into_iter().map(Target::CardReader))
            .map(|t| t.to_string())
            .collect::<Vec<_>>();
        enumeration(
            "The component a package is for: `terminal` or `card_reader:VENDOR`.",
            targets.iter().map(String::as_str),
        )
    }
}

impl PartialSchema for Vendor {
    fn schema() -> RefOr<Schema> {
        enumeration(
            "A face-authentication card reader's vendor.",
            Vendor::ALL.iter().map(|v| v.slug()),
        )
    }
}

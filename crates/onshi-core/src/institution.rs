//! Sites: the 医療機関コード that identifies a hospital, clinic or pharmacy, its prefecture and
//! its kind.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid 医療機関コード.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstitutionCodeError {
    #[error("医療機関コード must be exactly 10 digits, got {0:?}")]
    NotTenDigits(String),
    #[error("医療機関コード {code}: prefecture {prefecture:02} is not 01–47")]
    BadPrefecture { code: String, prefecture: u8 },
    #[error(
        "医療機関コード {code}: 点数表 digit {digit} is not 1 (医科), 3 (歯科), 4 (調剤) or 6 (訪問看護)"
    )]
    BadScoreTable { code: String, digit: u8 },
    #[error("医療機関コード {code}: check digit is {found}, expected {expected}")]
    BadCheckDigit {
        code: String,
        found: u8,
        expected: u8,
    },
}

/// 医療機関コード — a site's 10-digit code: prefecture (2), 点数表 (1), 郡市区 (2), 医療機関番号
/// (4) and a check digit. (The brief says "number 3", which leaves the code one digit short of
/// ten; the real format, and the brief's own examples such as 01-1-01-1371-9, have four.) Only [`InstitutionCode::parse`] makes one, so every value is valid.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstitutionCode([u8; 10]);

impl InstitutionCode {
    /// Parses and validates a code: digits only, a known prefecture and 点数表, and the check
    /// digit.
    pub fn parse(s: &str) -> Result<Self, InstitutionCodeError> {
        let bytes = s.as_bytes();
        if bytes.len() != 10 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(InstitutionCodeError::NotTenDigits(s.to_owned()));
        }
        let mut digits = [0u8; 10];
        for (d, b) in digits.iter_mut().zip(bytes) {
            *d = b - b'0';
        }
        let prefecture = digits[0] * 10 + digits[1];
        if Prefecture::from_number(prefecture).is_none() {
            return Err(InstitutionCodeError::BadPrefecture {
                code: s.to_owned(),
                prefecture,
            });
        }
        if ScoreTable::from_digit(digits[2]).is_none() {
            return Err(InstitutionCodeError::BadScoreTable {
                code: s.to_owned(),
                digit: digits[2],
            });
        }
        let expected = check_digit(&digits[..9]);
        if digits[9] != expected {
            return Err(InstitutionCodeError::BadCheckDigit {
                code: s.to_owned(),
                found: digits[9],
                expected,
            });
        }
        Ok(Self(digits))
    }

    /// Builds a valid code from its parts, computing the check digit (used by generators such
    /// as the simulator and the demo). `district` is 0–99, `number` 0–9999.
    pub fn from_parts(
        prefecture: Prefecture,
        table: ScoreTable,
        district: u8,
        number: u16,
    ) -> Option<Self> {
        if district > 99 || number > 9999 {
            return None;
        }
        let p = prefecture.number();
        let n = number;
        let mut digits = [
            p / 10,
            p % 10,
            table.digit(),
            district / 10,
            district % 10,
            (n / 1000) as u8,
            (n / 100 % 10) as u8,
            (n / 10 % 10) as u8,
            (n % 10) as u8,
            0,
        ];
        digits[9] = check_digit(&digits[..9]);
        Some(Self(digits))
    }

    /// The prefecture the site is in.
    pub fn prefecture(&self) -> Prefecture {
        Prefecture::from_number(self.0[0] * 10 + self.0[1])
            .unwrap_or_else(|| unreachable!("validated at parse"))
    }

    /// The 点数表 the site bills under.
    pub fn score_table(&self) -> ScoreTable {
        ScoreTable::from_digit(self.0[2]).unwrap_or_else(|| unreachable!("validated at parse"))
    }

    /// The code as its 10 digits.
    pub fn as_string(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

/// The Luhn-style check digit over the first 9 digits: from the right, weights 2,1,2,…; add
/// the digits of each product; check = (10 − sum mod 10) mod 10.
fn check_digit(first_nine: &[u8]) -> u8 {
    let sum: u32 = first_nine
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let product = u32::from(d) * if i % 2 == 0 { 2 } else { 1 };
            product / 10 + product % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

impl fmt::Display for InstitutionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl fmt::Debug for InstitutionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstitutionCode({self})")
    }
}

impl FromStr for InstitutionCode {
    type Err = InstitutionCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for InstitutionCode {
    type Error = InstitutionCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<InstitutionCode> for String {
    fn from(code: InstitutionCode) -> Self {
        code.as_string()
    }
}

/// 点数表 — the fee schedule digit of a 医療機関コード.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScoreTable {
    /// 1: 医科 (hospitals and clinics)
    Medical,
    /// 3: 歯科
    Dental,
    /// 4: 調剤 (pharmacies)
    Pharmacy,
    /// 6: 訪問看護
    HomeNursing,
}

impl ScoreTable {
    /// The digit in the code.
    pub fn digit(self) -> u8 {
        match self {
            Self::Medical => 1,
            Self::Dental => 3,
            Self::Pharmacy => 4,
            Self::HomeNursing => 6,
        }
    }

    /// The table for a digit, if it is one.
    pub fn from_digit(d: u8) -> Option<Self> {
        match d {
            1 => Some(Self::Medical),
            3 => Some(Self::Dental),
            4 => Some(Self::Pharmacy),
            6 => Some(Self::HomeNursing),
            _ => None,
        }
    }
}

/// The kind of site, as the rollout reports progress by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InstitutionKind {
    /// 病院 (20 beds or more)
    Hospital,
    /// 診療所 (医科)
    Clinic,
    /// 歯科診療所
    Dental,
    /// 薬局
    Pharmacy,
}

/// Why a string is not an institution kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown institution kind {0:?}: expected hospital, clinic, dental or pharmacy")]
pub struct UnknownInstitutionKind(pub String);

impl InstitutionKind {
    /// Every kind, in report order.
    pub const ALL: [Self; 4] = [Self::Hospital, Self::Clinic, Self::Dental, Self::Pharmacy];

    /// The machine name used in files and APIs.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Hospital => "hospital",
            Self::Clinic => "clinic",
            Self::Dental => "dental",
            Self::Pharmacy => "pharmacy",
        }
    }

    /// The Japanese name shown on pages.
    pub fn name_ja(self) -> &'static str {
        match self {
            Self::Hospital => "病院",
            Self::Clinic => "医科診療所",
            Self::Dental => "歯科診療所",
            Self::Pharmacy => "薬局",
        }
    }

    /// The English name shown on pages.
    pub fn name_en(self) -> &'static str {
        match self {
            Self::Hospital => "Hospital",
            Self::Clinic => "Clinic",
            Self::Dental => "Dental clinic",
            Self::Pharmacy => "Pharmacy",
        }
    }

    /// Whether a site of this kind can carry a code with this 点数表 (a hospital or clinic
    /// bills 医科; 訪問看護 stations are outside the four kinds).
    pub fn matches(self, table: ScoreTable) -> bool {
        matches!(
            (self, table),
            (Self::Hospital | Self::Clinic, ScoreTable::Medical)
                | (Self::Dental, ScoreTable::Dental)
                | (Self::Pharmacy, ScoreTable::Pharmacy)
        )
    }
}

impl FromStr for InstitutionKind {
    type Err = UnknownInstitutionKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.slug() == s || k.name_ja() == s)
            .ok_or_else(|| UnknownInstitutionKind(s.to_owned()))
    }
}

impl fmt::Display for InstitutionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// 都道府県 — one of the 47 prefectures, numbered as in JIS X 0401 and the 医療機関コード.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
// Read through f64 so that `13.0` is 13, as JSON Schema counts whole numbers; `13.5` is refused.
#[serde(try_from = "f64", into = "u8")]
pub struct Prefecture(u8);

const PREFECTURES: [(&str, &str); 47] = [
    ("北海道", "Hokkaido"),
    ("青森県", "Aomori"),
    ("岩手県", "Iwate"),
    ("宮城県", "Miyagi"),
    ("秋田県", "Akita"),
    ("山形県", "Yamagata"),
    ("福島県", "Fukushima"),
    ("茨城県", "Ibaraki"),
    ("栃木県", "Tochigi"),
    ("群馬県", "Gunma"),
    ("埼玉県", "Saitama"),
    ("千葉県", "Chiba"),
    ("東京都", "Tokyo"),
    ("神奈川県", "Kanagawa"),
    ("新潟県", "Niigata"),
    ("富山県", "Toyama"),
    ("石川県", "Ishikawa"),
    ("福井県", "Fukui"),
    ("山梨県", "Yamanashi"),
    ("長野県", "Nagano"),
    ("岐阜県", "Gifu"),
    ("静岡県", "Shizuoka"),
    ("愛知県", "Aichi"),
    ("三重県", "Mie"),
    ("滋賀県", "Shiga"),
    ("京都府", "Kyoto"),
    ("大阪府", "Osaka"),
    ("兵庫県", "Hyogo"),
    ("奈良県", "Nara"),
    ("和歌山県", "Wakayama"),
    ("鳥取県", "Tottori"),
    ("島根県", "Shimane"),
    ("岡山県", "Okayama"),
    ("広島県", "Hiroshima"),
    ("山口県", "Yamaguchi"),
    ("徳島県", "Tokushima"),
    ("香川県", "Kagawa"),
    ("愛媛県", "Ehime"),
    ("高知県", "Kochi"),
    ("福岡県", "Fukuoka"),
    ("佐賀県", "Saga"),
    ("長崎県", "Nagasaki"),
    ("熊本県", "Kumamoto"),
    ("大分県", "Oita"),
    ("宮崎県", "Miyazaki"),
    ("鹿児島県", "Kagoshima"),
    ("沖縄県", "Okinawa"),
];

/// Why a value is not a prefecture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown prefecture {0:?}: expected 1–47, a Japanese name (東京都) or an English one (Tokyo)"
)]
pub struct UnknownPrefecture(pub String);

impl Prefecture {
    /// The prefecture with this JIS number (1 北海道 … 47 沖縄県).
    pub fn from_number(n: u8) -> Option<Self> {
        (1..=47).contains(&n).then_some(Self(n))
    }

    /// All 47, in JIS order.
    pub fn all() -> impl Iterator<Item = Self> {
        (1..=47).map(Self)
    }

    /// The JIS number, 1–47.
    pub fn number(self) -> u8 {
        self.0
    }

    /// 東京都, 北海道, …
    pub fn name_ja(self) -> &'static str {
        PREFECTURES[usize::from(self.0 - 1)].0
    }

    /// Tokyo, Hokkaido, …
    pub fn name_en(self) -> &'static str {
        PREFECTURES[usize::from(self.0 - 1)].1
    }
}

impl TryFrom<f64> for Prefecture {
    type Error = UnknownPrefecture;
    fn try_from(n: f64) -> Result<Self, Self::Error> {
        (n.fract() == 0.0 && (1.0..=47.0).contains(&n))
            .then_some(Self(n as u8))
            .ok_or_else(|| UnknownPrefecture(n.to_string()))
    }
}

impl TryFrom<u8> for Prefecture {
    type Error = UnknownPrefecture;
    fn try_from(n: u8) -> Result<Self, Self::Error> {
        Self::from_number(n).ok_or_else(|| UnknownPrefecture(n.to_string()))
    }
}

impl From<Prefecture> for u8 {
    fn from(p: Prefecture) -> Self {
        p.0
    }
}

impl FromStr for Prefecture {
    type Err = UnknownPrefecture;
    /// Accepts the number (`13`, `013`), the Japanese name (`東京都`) or the English one
    /// (`Tokyo`, any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u8>() {
            return Self::from_number(n).ok_or_else(|| UnknownPrefecture(s.to_owned()));
        }
        Self::all()
            .find(|p| p.name_ja() == t || p.name_en().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownPrefecture(s.to_owned()))
    }
}

impl fmt::Display for Prefecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name_ja())
    }
}

impl fmt::Debug for Prefecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefecture({:02} {})", self.0, self.name_en())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_from_the_design_brief_are_valid() {
        let code = InstitutionCode::parse("0110113719").expect("valid");
        assert_eq!(code.prefecture().name_ja(), "北海道");
        assert_eq!(code.score_table(), ScoreTable::Medical);
        let osaka = InstitutionCode::parse("2714206386").expect("valid");
        assert_eq!(osaka.prefecture().name_ja(), "大阪府");
        assert_eq!(osaka.score_table(), ScoreTable::Medical);
        assert_eq!(osaka.to_string(), "2714206386");
    }

    #[test]
    fn wrong_check_digit_is_rejected_with_the_expected_digit() {
        let err = InstitutionCode::parse("1311111111").expect_err("invalid");
        assert!(matches!(
            err,
            InstitutionCodeError::BadCheckDigit { found: 1, .. }
        ));
        assert!(err.to_string().contains("check digit"));
    }

    #[test]
    fn malformed_codes_are_rejected_naming_the_problem() {
        for bad in [
            "",
            "011011371",
            "01101137190",
            "01101137a9",
            "０１１０１１３７１９",
        ] {
            assert!(matches!(
                InstitutionCode::parse(bad),
                Err(InstitutionCodeError::NotTenDigits(_))
            ));
        }
        assert!(matches!(
            InstitutionCode::parse("4810113710"),
            Err(InstitutionCodeError::BadPrefecture { prefecture: 48, .. })
        ));
        assert!(matches!(
            InstitutionCode::parse("0010113710"),
            Err(InstitutionCodeError::BadPrefecture { prefecture: 0, .. })
        ));
        assert!(matches!(
            InstitutionCode::parse("0120113710"),
            Err(InstitutionCodeError::BadScoreTable { digit: 2, .. })
        ));
    }

    #[test]
    fn codes_round_trip_through_serde_as_strings() {
        let code = InstitutionCode::parse("0110113719").expect("valid");
        let json = serde_json_like(&code);
        assert_eq!(json, "0110113719");
        assert!(InstitutionCode::try_from("0110113718".to_owned()).is_err());
    }

    fn serde_json_like(code: &InstitutionCode) -> String {
        String::from(*code)
    }

    #[test]
    fn prefectures_are_numbered_as_jis() {
        assert_eq!(Prefecture::all().count(), 47);
        let tokyo: Prefecture = "13".parse().expect("number");
        assert_eq!(tokyo.name_ja(), "東京都");
        assert_eq!("東京都".parse::<Prefecture>(), Ok(tokyo));
        assert_eq!("tokyo".parse::<Prefecture>(), Ok(tokyo));
        assert_eq!(
            Prefecture::from_number(47).map(Prefecture::name_ja),
            Some("沖縄県")
        );
        assert!("0".parse::<Prefecture>().is_err());
        assert!("48".parse::<Prefecture>().is_err());
        assert!("Atlantis".parse::<Prefecture>().is_err());
    }

    #[test]
    fn institution_kinds_parse_from_slug_or_japanese_and_match_the_score_table() {
        assert_eq!("pharmacy".parse(), Ok(InstitutionKind::Pharmacy));
        assert_eq!("病院".parse(), Ok(InstitutionKind::Hospital));
        assert!("hospice".parse::<InstitutionKind>().is_err());
        assert!(InstitutionKind::Clinic.matches(ScoreTable::Medical));
        assert!(!InstitutionKind::Pharmacy.matches(ScoreTable::Dental));
    }

    fn any_prefecture() -> impl Strategy<Value = Prefecture> {
        (1u8..=47).prop_map(|n| Prefecture::from_number(n).expect("in range"))
    }

    fn any_table() -> impl Strategy<Value = ScoreTable> {
        prop_oneof![
            Just(ScoreTable::Medical),
            Just(ScoreTable::Dental),
            Just(ScoreTable::Pharmacy),
            Just(ScoreTable::HomeNursing),
        ]
    }

    proptest! {
        #[test]
        fn built_codes_parse_back_to_themselves(
            p in any_prefecture(), t in any_table(), district in 0u8..100, number in 0u16..10000
        ) {
            let code = InstitutionCode::from_parts(p, t, district, number).expect("in range");
            let parsed = InstitutionCode::parse(&code.to_string()).expect("valid");
            prop_assert_eq!(parsed, code);
            prop_assert_eq!(parsed.prefecture(), p);
            prop_assert_eq!(parsed.score_table(), t);
        }

        #[test]
        fn changing_any_one_digit_breaks_the_code(
            p in any_prefecture(), district in 0u8..100, number in 0u16..10000,
            pos in 3usize..10, delta in 1u8..10
        ) {
            let code = InstitutionCode::from_parts(p, ScoreTable::Medical, district, number)
                .expect("in range").to_string();
            let mut bytes = code.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).expect("ascii");
            prop_assert!(InstitutionCode::parse(&changed).is_err());
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,12}") {
            let _ = InstitutionCode::parse(&s);
        }
    }
}

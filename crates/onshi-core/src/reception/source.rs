//! Where a screen's wording comes from. The notice (別添 事務連絡, ①・②) quotes some screens word
//! for word and shows the others only as pictures or describes them in words; the emulator must
//! never pass off a wording it made up as the real one.

use serde::Serialize;

use crate::lang::Lang;

/// The source of a screen's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The notice quotes this wording; shown exactly as it is written there.
    Quoted,
    /// The notice gives no wording (a picture, a behaviour in words, or nothing): the text is the
    /// emulator's, and screens mark it with [`Source::MARK_JA`].
    Assumed,
}

impl Source {
    /// The mark shown beside an assumed text.
    pub const MARK_JA: &'static str = "※通知に文言の記載がないため想定表示です";
    /// The mark in English.
    pub const MARK_EN: &'static str = "not quoted in the notice: an assumed text";

    /// `quoted` or `assumed`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Quoted => "quoted",
            Self::Assumed => "assumed",
        }
    }

    /// The mark to show beside a text from this source: none for a quoted one.
    pub fn mark(self, lang: Lang) -> Option<&'static str> {
        match self {
            Self::Quoted => None,
            Self::Assumed => Some(lang.pick(Self::MARK_JA, Self::MARK_EN)),
        }
    }
}

//! The reception emulator's desks, kept in memory by an unguessable id. The page around them
//! is [`crate::pages::reception`]; this store knows no HTTP.

use std::collections::HashMap;

use onshi_core::institution::InstitutionCode;
use onshi_core::reception::{Reception, ReceptionLog};

use crate::secrets::new_secret;

/// At most this many desks are kept; the oldest is dropped first.
const MAX_DESKS: usize = 1000;

/// One emulated desk: its state, its log, and where its terminal state came from.
#[derive(Debug, Clone)]
pub struct Desk {
    pub desk: Reception,
    pub log: ReceptionLog,
    /// Whether the current failure is already in the log.
    pub recorded: bool,
    /// The card the patient inserts next.
    pub card: String,
    /// The site whose terminal state the desk shows, if linked to one.
    pub linked: Option<InstitutionCode>,
    created: u64,
}

/// All desks, by their unguessable id.
#[derive(Default)]
pub struct Desks {
    pub map: HashMap<String, Desk>,
    counter: u64,
}

impl Desks {
    /// Adds a desk (dropping the oldest when full); returns its id.
    pub fn insert(&mut self, desk: Reception, linked: Option<InstitutionCode>) -> String {
        if self.map.len() >= MAX_DESKS
            && let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, d)| d.created)
                .map(|(k, _)| k.clone())
        {
            self.map.remove(&oldest);
        }
        self.counter += 1;
        let id = new_secret();
        self.map.insert(
            id.clone(),
            Desk {
                desk,
                log: ReceptionLog::default(),
                recorded: false,
                card: "test-card-0001".to_owned(),
                linked,
                created: self.counter,
            },
        );
        id
    }
}

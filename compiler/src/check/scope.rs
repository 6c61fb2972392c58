//! Lexical scopes of the elaborator: let bindings, parameters, the layer whose forward is being
//! elaborated, and the scan bodies that may update carried state.

use super::value::{LayerId, Value};
use std::collections::HashMap;

/// A scan body being elaborated: which names are carried, and what it yields.
#[derive(Debug)]
pub struct ScanFrame {
    pub carries: Vec<String>,
    /// Index into `Scope::frames` where the carried names are bound.
    pub frame_index: usize,
    pub yielded: Option<(Value, crate::source::Span)>,
    /// Where each carried state was last assigned, for diagnostics.
    pub assigned: HashMap<String, crate::source::Span>,
}

#[derive(Debug)]
pub struct Scope {
    /// The module whose top-level names are visible.
    pub module: usize,
    /// The layer instance whose hyper-parameters (and, in its forward, members) are visible.
    pub layer: Option<LayerId>,
    /// Whether the layer's members are visible (in its forward, not while instantiating it).
    pub members_visible: bool,
    pub frames: Vec<HashMap<String, Value>>,
    pub scans: Vec<ScanFrame>,
}

impl Scope {
    pub fn new(module: usize, layer: Option<LayerId>, members_visible: bool) -> Scope {
        Scope {
            module,
            layer,
            members_visible,
            frames: vec![HashMap::new()],
            scans: Vec::new(),
        }
    }

    pub fn bind(&mut self, name: &str, value: Value) {
        if let Some(frame) = self.frames.last_mut() {
            frame.insert(name.to_string(), value);
        }
    }

    pub fn local(&self, name: &str) -> Option<&Value> {
        self.frames.iter().rev().find_map(|frame| frame.get(name))
    }

    pub fn push(&mut self) {
        self.frames.push(HashMap::new());
    }

    pub fn pop(&mut self) {
        self.frames.pop();
    }

    /// Every local name, for suggestions.
    pub fn local_names(&self) -> Vec<String> {
        self.frames
            .iter()
            .flat_map(|frame| frame.keys().cloned())
            .collect()
    }
}

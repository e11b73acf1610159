//! Minimal structured logging to stderr: JSON lines (or `level message k=v` text), level-filtered.

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(1);
static JSON: AtomicU8 = AtomicU8::new(1);

/// Set from `logging.level` / `logging.format`.
pub fn configure(level: &str, format: &str) {
    let level = match level {
        "debug" => 0,
        "warn" => 2,
        "error" => 3,
        _ => 1,
    };
    LEVEL.store(level, Ordering::Relaxed);
    JSON.store(u8::from(format != "text"), Ordering::Relaxed);
}

fn emit(level: u8, name: &str, message: &str, fields: &[(&str, &str)]) {
    if level < LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let line = if JSON.load(Ordering::Relaxed) == 1 {
        let mut map = serde_json::Map::new();
        map.insert(
            "ts".into(),
            crate::util::rfc3339(crate::util::now_ms()).into(),
        );
        map.insert("level".into(), name.into());
        map.insert("msg".into(), message.into());
        for (k, v) in fields {
            map.insert((*k).to_owned(), (*v).into());
        }
        serde_json::Value::Object(map).to_string()
    } else {
        let mut line = format!("{name} {message}");
        for (k, v) in fields {
            line.push_str(&format!(" {k}={v:?}"));
        }
        line
    };
    eprintln!("{line}");
}

pub fn info(message: &str, fields: &[(&str, &str)]) {
    emit(1, "info", message, fields);
}

pub fn warn(message: &str, fields: &[(&str, &str)]) {
    emit(2, "warn", message, fields);
}

pub fn error(message: &str, fields: &[(&str, &str)]) {
    emit(3, "error", message, fields);
}

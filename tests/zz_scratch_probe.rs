use modelc_compiler::check::modules::MemoryLoader;
use modelc_compiler::check::{check_file, CheckOptions};
use std::collections::HashMap;
#[test]
fn probe() {
    let Ok(path) = std::env::var("PROBE_FILE") else {
        return;
    };
    let stack: usize = std::env::var("PROBE_STACK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut files = HashMap::new();
    if let Ok(dir) = std::env::var("PROBE_DIR") {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            files.insert(
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(entry.path()).unwrap(),
            );
        }
    }
    let handle = std::thread::Builder::new()
        .stack_size(stack << 20)
        .spawn(move || {
            let start = std::time::Instant::now();
            let result = check_file(
                "main.model",
                &text,
                &MemoryLoader(files),
                CheckOptions::default(),
            );
            let codes: Vec<_> = result
                .diagnostics
                .iter()
                .map(|d| (d.code, d.message.chars().take(100).collect::<String>()))
                .take(5)
                .collect();
            println!(
                "elapsed {:?}, {} diagnostics, first: {:?}",
                start.elapsed(),
                result.diagnostics.len(),
                codes
            );
        })
        .unwrap();
    handle.join().unwrap();
}

use modelc_compiler::check::{check_file, modules::NoFiles, CheckOptions};
use modelc_compiler::ir::print::print_graph;
#[test]
fn scratch() {
    for path in ["../examples/mlp.model", "../examples/lenet.model"] {
        let text = std::fs::read_to_string(path).unwrap();
        let result = check_file(path, &text, &NoFiles, CheckOptions::default());
        for d in &result.diagnostics {
            println!(
                "{:?} at {}",
                d,
                d.primary_span()
                    .map(|s| result.program.sources.location(s))
                    .unwrap_or_default()
            );
        }
        for m in &result.models {
            println!("{}", print_graph(&m.graph, Some(&result.program.sources)));
            println!("{:?}", modelc_compiler::ir::verify::verify(&m.graph));
        }
        assert!(result.diagnostics.is_empty());
    }
}

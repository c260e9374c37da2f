//! The README's tour quotes `examples/hot_readings.rs`, which the tests compile: the quote must
//! stay the same as the file.

#[test]
fn the_readme_quotes_the_compiled_processor_word_for_word() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/hot_readings.rs"
    ))
    .expect("hot_readings.rs");
    let start = example.find("// tour: start\n").expect("start marker") + "// tour: start\n".len();
    let end = example.find("// tour: end").expect("end marker");
    let quoted = format!("```rust\n{}```", &example[start..end]);
    assert!(
        readme.contains(&quoted),
        "README.md must quote examples/iot-alerts/examples/hot_readings.rs between the tour \
         markers, as:\n{quoted}"
    );
}

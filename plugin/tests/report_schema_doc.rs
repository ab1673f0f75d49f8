//! docs/report-schema.md must describe what the code writes: every top-level field of a
//! report, every finding id and every check id, and the current schema version.

use dns_doctor::diagnose::{self, Diagnosis, DiagnosisInput};
use dns_doctor::evidence::Evidence;
use dns_doctor::report::{Report, RunInfo, SCHEMA_VERSION};
use dns_doctor::topology::Topology;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/report-schema.md");
    std::fs::read_to_string(path).expect("docs/report-schema.md is readable")
}

#[test]
fn every_top_level_field_is_documented() {
    let doc = doc();
    let report = Report::new(
        &Topology::default(),
        &Evidence::default(),
        Diagnosis::default(),
        RunInfo::default(),
    );
    let value = serde_json::to_value(&report).unwrap();
    for key in value.as_object().unwrap().keys() {
        assert!(
            doc.contains(&format!("| `{key}` |")),
            "field {key} is not documented"
        );
    }
    for key in value["target"].as_object().unwrap().keys() {
        assert!(
            doc.contains(&format!("`{key}`")),
            "target.{key} is not documented"
        );
    }
    assert!(doc.contains(&format!("Current version: **{SCHEMA_VERSION}**.")));
}

#[test]
fn every_finding_and_check_id_is_documented() {
    let doc = doc();
    for id in diagnose::PRIORITY {
        assert!(
            doc.contains(&format!("| `{id}` |")),
            "finding id {id} is not documented"
        );
    }
    let topology = Topology::default();
    let evidence = Evidence::default();
    let d = diagnose::diagnose(&DiagnosisInput {
        topology: &topology,
        evidence: &evidence,
        captures: &[],
        correlation: None,
    });
    assert!(!d.checklist.is_empty());
    for c in &d.checklist {
        assert!(
            doc.contains(&format!("`{}`", c.id)),
            "check id {} is not documented",
            c.id
        );
    }
}

//! Every fixture of every format parses into the expected subjects, title, severity and status.

use std::path::Path;

use lockout::alerts;
use lockout::alerts::SourceFormat;
use serde_json::{Value, json};

#[test]
fn every_fixture_parses_as_expected() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alerts");
    let mut checked = 0;
    for format in SourceFormat::ALL {
        let dir = root.join(format.as_str());
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let expected = expected.as_object().unwrap();
        assert!(
            expected.len() >= 3,
            "{format:?} needs at least three fixtures"
        );
        assert!(
            expected.keys().any(|k| k.contains("1password")),
            "{format:?} needs a 1Password fixture"
        );
        for (file, want) in expected {
            let body = std::fs::read(dir.join(file)).unwrap();
            let parsed = alerts::parse(format, &Default::default(), None, &body)
                .unwrap_or_else(|e| panic!("{format:?}/{file}: {e}"));
            let got: Vec<Value> = parsed
                .iter()
                .map(|a| {
                    json!({
                        "title": a.title,
                        "severity": a.severity,
                        "status": a.status,
                        "subjects": a.subjects.iter().map(|s| json!({"email": s.email, "user_id": s.user_id})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            assert_eq!(&Value::from(got), want, "{format:?}/{file}");
            checked += 1;
        }
    }
    assert!(checked >= 27, "checked {checked}");
}

#[test]
fn wrong_shapes_name_the_missing_field() {
    let cases = [
        (
            SourceFormat::Alertmanager,
            json!({"status": "firing"}),
            "\"alerts\"",
        ),
        (
            SourceFormat::Alertmanager,
            json!({"alerts": [{"status": "firing"}]}),
            "alerts[0]: missing field \"labels\"",
        ),
        (
            SourceFormat::Grafana,
            json!({"alerts": "x"}),
            "must be an array",
        ),
        (SourceFormat::Splunk, json!({"sid": "1"}), "\"result\""),
        (SourceFormat::Datadog, json!({"id": "1"}), "\"title\""),
        (
            SourceFormat::Elastic,
            json!({"alerts": [{"user": {}}]}),
            "kibana.alert.rule.name",
        ),
        (
            SourceFormat::Sentinel,
            json!({"object": {}}),
            "object.properties",
        ),
        (SourceFormat::Panther, json!({"alertId": "x"}), "\"title\""),
        (
            SourceFormat::Sumologic,
            json!({"trigger_type": "Critical"}),
            "alert_name",
        ),
        (SourceFormat::Generic, json!({"user": {}}), "/title"),
        (
            SourceFormat::Splunk,
            json!([1, 2]),
            "expected a JSON object",
        ),
    ];
    for (format, body, needle) in cases {
        let err = alerts::parse(
            format,
            &Default::default(),
            None,
            body.to_string().as_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(err, alerts::ParseError::Shape { .. }),
            "{format:?}: {err}"
        );
        assert!(
            err.to_string().contains(needle),
            "{format:?}: {err} should mention {needle}"
        );
    }
}

#[test]
fn a_source_can_override_where_fields_sit() {
    let body = json!({"search_name": "custom", "sid": "1", "result": {"who": "carol@example.com", "prio": "critical"}});
    let mappings = alerts::FieldMappings::from_settings(
        &[
            ("subject_email", "/result/who"),
            ("severity", "/result/prio"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
    )
    .unwrap();
    let a = &alerts::parse(
        SourceFormat::Splunk,
        &mappings,
        None,
        body.to_string().as_bytes(),
    )
    .unwrap()[0];
    assert_eq!(
        a.subjects[0].email.as_ref().unwrap().as_str(),
        "carol@example.com"
    );
    assert_eq!(a.severity, alerts::Severity::Critical);
    let a = &alerts::parse(
        SourceFormat::Splunk,
        &Default::default(),
        Some(alerts::Severity::High),
        body.to_string().as_bytes(),
    )
    .unwrap()[0];
    assert_eq!(
        a.severity,
        alerts::Severity::High,
        "the source's default severity"
    );
}

#[test]
fn a_source_can_map_fields_with_cel_and_a_bad_expression_is_a_config_error() {
    // Splunk result rows often carry only a user name; the domain is the company's.
    let body = json!({"search_name": "1Password failed sign-ins", "sid": "9", "result": {"user": "dave", "count": "12"}});
    let mappings = alerts::FieldMappings::from_settings(
        &[
            ("subject_email", "cel: payload.result.user + '@example.com'"),
            (
                "severity",
                "cel: int(payload.result['count']) > 10 ? 'high' : 'low'",
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
    )
    .unwrap();
    let a = &alerts::parse(
        SourceFormat::Splunk,
        &mappings,
        None,
        body.to_string().as_bytes(),
    )
    .unwrap()[0];
    assert_eq!(
        a.subjects[0].email.as_ref().unwrap().as_str(),
        "dave@example.com"
    );
    assert_eq!(a.severity, alerts::Severity::High);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    // The settings hold text; `prepare` (which `serve` and `config check` run) parses it
    // into the source, and an error names the key.
    let prepared = |source: &str| {
        std::fs::write(&path, format!("sources:\n  s:\n{source}")).unwrap();
        let (settings, _) = lockout::config::Settings::load(Some(&path)).unwrap();
        lockout::startup::prepare(&settings)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let auth = "    auth: { type: bearer, token: t }\n";
    let err = prepared(&format!(
        "    format: splunk\n{auth}    mappings: {{ subject_email: \"cel: alert.title\" }}\n"
    ))
    .unwrap_err();
    assert!(
        err.contains("sources.s.mappings.subject_email") && err.contains("payload"),
        "{err}"
    );
    let err = prepared(&format!("{auth}    mappings: {{ subject_mail: /u }}\n")).unwrap_err();
    assert!(
        err.contains("sources.s.mappings.subject_mail: unknown field"),
        "{err}"
    );
    let err = prepared(&format!("    format: splnuk\n{auth}")).unwrap_err();
    assert!(
        err.contains("sources.s.format: unknown format \"splnuk\""),
        "{err}"
    );
    let err = prepared(&format!("{auth}    default_severity: urgent\n")).unwrap_err();
    assert!(
        err.contains("sources.s.default_severity: unknown severity"),
        "{err}"
    );
    prepared(&format!("    format: splunk\n{auth}    default_severity: high\n    mappings: {{ subject_email: /result/who }}\n")).unwrap();
}

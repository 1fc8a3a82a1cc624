//! Prints how lockout reads an alert payload: `cargo run --example parse_alert -- FORMAT FILE`.

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(format), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: parse_alert FORMAT FILE");
        std::process::exit(2);
    };
    let format: lockout::alerts::SourceFormat = format.parse().unwrap_or_else(|e| panic!("{e}"));
    let body = std::fs::read(&file).unwrap();
    match lockout::alerts::parse(format, &Default::default(), None, &body) {
        Ok(alerts) => {
            for a in alerts {
                let subjects: Vec<String> = a
                    .subjects
                    .iter()
                    .map(|s| {
                        format!(
                            "{:?}/{:?}",
                            s.email.as_ref().map(|e| e.to_string()),
                            s.user_id.as_ref().map(|u| u.to_string())
                        )
                    })
                    .collect();
                println!(
                    "{:?} | {:?} | {:?} | {:?} | {:?}",
                    a.title, a.severity, a.status, subjects, a.native_id
                );
            }
        }
        Err(e) => println!("ERROR {e}"),
    }
}

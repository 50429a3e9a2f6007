//! What sealing at rest costs: the vault's primitives, and the store paths that seal the most
//! (queueing user commands, storing a device's users and templates), sealed against in the
//! clear, on a real SQLite file. `cargo bench -p adms-store --bench sealing`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use adms_protocol::DeviceCommand;
use adms_store::{
    Approval, BiometricTemplate, NewCommand, NewDevice, OperlogBatch, Store, StoreOptions, UserRow, now_micros,
};
use adms_vault::{IndexKey, Sealer, SecretKey, Vault};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// A fingerprint template as firmware sends it: about 1.5 KB of base64.
fn template_text() -> String {
    "TVNTMjEAAAQ2NwQFBQUJBc7QAAAcN2kBAAAAhCcnfjYaAGkPEQB".repeat(30)
}

fn vault() -> Vault {
    Vault::new(SecretKey::generate(), IndexKey::generate())
}

fn primitives(c: &mut Criterion) {
    let vault = vault();
    let sealer = Sealer(Some(&vault));
    let template = template_text();
    let sealed_card = sealer.seal("employees.card_no", "42", "8877665501");
    let sealed_template = sealer.seal("roster_templates.template", "42/1/0/0", &template);
    let mut group = c.benchmark_group("vault");
    group.bench_function("seal card number", |b| {
        b.iter(|| sealer.seal("employees.card_no", "42", black_box("8877665501")))
    });
    group.bench_function("open card number", |b| {
        b.iter(|| sealer.open("employees.card_no", "42", black_box(&sealed_card)).unwrap())
    });
    group.bench_function("seal 1.5 KB template", |b| {
        b.iter(|| sealer.seal("roster_templates.template", "42/1/0/0", black_box(&template)))
    });
    group.bench_function("open 1.5 KB template", |b| {
        b.iter(|| sealer.open("roster_templates.template", "42/1/0/0", black_box(&sealed_template)).unwrap())
    });
    group.bench_function("keyed digest of a 60-byte line", |b| {
        b.iter(|| sealer.digest("rejected_lines.raw", black_box(&[b'x'; 60])))
    });
    group.finish();
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    device_id: i64,
}

fn fixture(rt: &tokio::runtime::Runtime, sealed: bool) -> Fixture {
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let store = Store::open(&url, StoreOptions::default()).await.unwrap();
        if sealed {
            store.seal_with(vault()).unwrap();
        }
        let device = store
            .register_device(&NewDevice { sn: "BENCH001", approval: Some(Approval::Approved), ..Default::default() })
            .await
            .unwrap();
        Fixture { _dir: dir, store, device_id: device.id }
    })
}

static NEXT_PIN: AtomicU64 = AtomicU64::new(1);

fn user_commands(device_id: i64, n: usize) -> Vec<NewCommand> {
    (0..n)
        .map(|_| {
            let pin = NEXT_PIN.fetch_add(1, Ordering::Relaxed);
            let command: DeviceCommand = serde_json::from_value(serde_json::json!({
                "type": "user_upsert", "pin": pin.to_string(), "name": "Ann Lee", "password": "5817",
                "card": "8877665501"
            }))
            .unwrap();
            NewCommand { device_id, command, dedupe_key: None, source: "bench".into(), expires_at: i64::MAX }
        })
        .collect()
}

fn operlog(device_id: i64, n: usize) -> OperlogBatch {
    let template = template_text();
    let pins: Vec<String> = (0..n).map(|_| NEXT_PIN.fetch_add(1, Ordering::Relaxed).to_string()).collect();
    OperlogBatch {
        device_id,
        table: "OPERLOG",
        users: pins
            .iter()
            .map(|pin| UserRow {
                pin: pin.clone(),
                name: "Ann Lee".into(),
                name_raw: None,
                privilege: Some(0),
                password: "5817".into(),
                card: "8877665501".into(),
                group: "1".into(),
                time_zones: "0000000100000000".into(),
                verify: Some(0),
                vice_card: String::new(),
                raw_line: format!("USER PIN={pin}\tName=Ann Lee\tPasswd=5817\tCard=8877665501").into_bytes(),
            })
            .collect(),
        templates: pins
            .iter()
            .map(|pin| BiometricTemplate {
                pin: pin.clone(),
                record_kind: "BIODATA",
                bio_type: 1,
                no: 0,
                index: 0,
                valid: Some(1),
                duress: Some(0),
                major_ver: Some(10),
                minor_ver: Some(0),
                format: "0".into(),
                size: Some(1500),
                template: template.clone(),
            })
            .collect(),
        received_at: now_micros(),
        device_sn: "BENCH001".into(),
        ..Default::default()
    }
}

fn store_paths(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("store");
    group.sample_size(20);
    for (name, sealed) in [("clear", false), ("sealed", true)] {
        let f = fixture(&rt, sealed);
        group.bench_function(format!("enqueue 1000 user commands, {name}"), |b| {
            b.iter_batched(
                || user_commands(f.device_id, 1000),
                |commands| rt.block_on(f.store.enqueue_commands(&commands, now_micros())).unwrap(),
                BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("take 100 due commands, {name}"), |b| {
            let policy =
                adms_store::CommandPolicy { max_per_poll: 100, max_poll_bytes: usize::MAX, ..Default::default() };
            b.iter_batched(
                || rt.block_on(f.store.enqueue_commands(&user_commands(f.device_id, 100), now_micros())).unwrap(),
                |_| rt.block_on(f.store.take_due_commands(f.device_id, now_micros(), &policy)).unwrap(),
                BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("OPERLOG of 100 users and templates, {name}"), |b| {
            b.iter_batched(
                || operlog(f.device_id, 100),
                |batch| rt.block_on(f.store.store_operlog(&batch)).unwrap(),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, primitives, store_paths);
criterion_main!(benches);

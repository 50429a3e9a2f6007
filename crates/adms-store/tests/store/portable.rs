//! What the portable rewrite of the store's SQL must not change: template ids of existing
//! databases, and the `*_icontains` filters (now an escaped `LIKE`).

use adms_store::roster::{EmployeeFields, EmployeeFilter, OrgFields, OrgFilter, OrgKind};
use adms_store::templates::TemplateFilter;
use adms_store::{Approval, BiometricTemplate, NewDevice, OperlogBatch, Page, Store, StoreOptions, now_micros};
use sqlx::Connection as _;

use crate::common::{Engine, template};

crate::on_both_engines!(icontains_matches_substrings_literally);

const ALL: Page = Page { offset: 0, limit: 100 };

async fn upload(store: &Store, device_id: i64, sn: &str, templates: Vec<BiometricTemplate>) {
    let batch = OperlogBatch {
        device_id,
        table: "OPERLOG",
        templates,
        received_at: now_micros(),
        device_sn: sn.into(),
        ..Default::default()
    };
    store.store_operlog(&batch).await.expect("store operlog");
}

async fn template_ids(store: &Store) -> Vec<(i64, String)> {
    let (_, rows) = store.list_templates(&TemplateFilter::default(), ALL).await.unwrap();
    rows.into_iter().map(|t| (t.id, t.template)).collect()
}

/// A database written before `biometric_templates` had an id column keeps the ids the API
/// published (its rowids, gaps included), and rows added later continue that sequence.
/// SQLite only: it migrates a database of the previous (SQLite-only) release.
#[tokio::test]
async fn template_ids_survive_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let url = format!("sqlite://{}", path.display());
    // The schema of the previous release: every migration before 0015.
    let old_migrations = dir.path().join("migrations");
    std::fs::create_dir(&old_migrations).unwrap();
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    for entry in std::fs::read_dir(&top).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() < "0015" {
            std::fs::copy(entry.path(), old_migrations.join(&name)).unwrap();
        }
    }
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::migrate::Migrator::new(old_migrations.as_path()).await.unwrap().run(&mut conn).await.unwrap();
        sqlx::query("INSERT INTO devices (sn, first_seen_at) VALUES ('OLD1', 1)").execute(&mut conn).await.unwrap();
        for (rowid, pin) in [(3, "1"), (7, "2"), (8, "3")] {
            sqlx::query(
                "INSERT INTO biometric_templates (rowid, device_id, pin, bio_type, bio_no, bio_index, record_kind, \
                 format, template, updated_at) VALUES ($1, 1, $2, 1, 0, 0, 'BIODATA', '0', $3, $4)",
            )
            .bind(rowid)
            .bind(pin)
            .bind(format!("old-{pin}"))
            .bind(rowid)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();
    }

    let store = Store::open(&url, StoreOptions::default()).await.expect("open migrates to 0015");
    assert_eq!(template_ids(&store).await, [(3, "old-1".to_owned()), (7, "old-2".to_owned()), (8, "old-3".to_owned())]);
    // A re-sent copy keeps its id; a new slot takes the next rowid, as it did before.
    upload(&store, 1, "OLD1", vec![template("2", 0, "new-2"), template("4", 0, "new-4")]).await;
    assert_eq!(
        template_ids(&store).await,
        [(3, "old-1".to_owned()), (7, "new-2".to_owned()), (8, "old-3".to_owned()), (9, "new-4".to_owned())]
    );
    let found = store.template_by_id(9).await.unwrap().expect("by id");
    assert_eq!(found.pin, "4");
}

/// On a new database the id of every copy is the rowid the API has always published.
/// SQLite only: the ids published so far are SQLite rowids; a PostgreSQL database has no
/// earlier release whose ids it must continue.
#[tokio::test]
async fn new_template_ids_are_the_rowids() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/new.db", dir.path().display());
    let store = Store::open(&url, StoreOptions::default()).await.unwrap();
    let new = NewDevice { sn: "A", approval: Some(Approval::Approved), ..Default::default() };
    let a = store.register_device(&new).await.unwrap();
    upload(&store, a.id, "A", vec![template("1", 0, "a"), template("1", 1, "b"), template("2", 0, "c")]).await;
    let ids: Vec<i64> = template_ids(&store).await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, [1, 2, 3]);
}

/// `*_icontains` finds a substring ignoring ASCII case, and a needle's `%`, `_` and `!` match
/// only themselves (the escaped `LIKE` behaves as `instr` did).
async fn icontains_matches_substrings_literally(engine: Engine) {
    let store = crate::common::fresh(engine).await;
    for (code, first) in [("A100", "Ann"), ("B_1", "Bob"), ("C%1", "Cy!d"), ("D11", "dAN")] {
        let fields = EmployeeFields {
            emp_code: code.into(),
            first_name: first.into(),
            department_id: 1,
            verify_mode: -1,
            app_role: 1,
            ..Default::default()
        };
        store.save_employee(&fields, &[]).await.unwrap();
    }
    let codes = |f: EmployeeFilter| {
        let store = store.clone();
        async move {
            let (count, rows) = store.list_employees(&f, ALL).await.unwrap();
            let codes: Vec<String> = rows.into_iter().map(|e| e.fields.emp_code).collect();
            assert_eq!(count, codes.len() as i64);
            codes
        }
    };
    let by_code = |s: &str| EmployeeFilter { emp_code_icontains: Some(s.into()), ..Default::default() };
    let by_name = |s: &str| EmployeeFilter { first_name_icontains: Some(s.into()), ..Default::default() };
    assert_eq!(codes(by_code("_")).await, ["B_1"]);
    assert_eq!(codes(by_code("%")).await, ["C%1"]);
    assert_eq!(codes(by_code("1")).await, ["A100", "B_1", "C%1", "D11"]);
    assert_eq!(codes(by_code("a1")).await, ["A100"]);
    assert_eq!(codes(by_name("an")).await, ["A100", "D11"]);
    assert_eq!(codes(by_name("!")).await, ["C%1"]);
    assert_eq!(codes(by_name("y!D")).await, ["C%1"]);
    assert!(codes(by_name("!!")).await.is_empty());
    assert_eq!(codes(by_code("")).await.len(), 4, "an empty needle matches everything, as instr did");

    store
        .save_org(OrgKind::Area, None, &OrgFields { code: "X_Y".into(), name: "Hall".into(), parent_id: None })
        .await
        .unwrap();
    store
        .save_org(OrgKind::Area, None, &OrgFields { code: "XAY".into(), name: "hall 2".into(), parent_id: None })
        .await
        .unwrap();
    let (_, units) = store
        .list_org(OrgKind::Area, &OrgFilter { code_icontains: Some("x_".into()), ..Default::default() }, ALL)
        .await
        .unwrap();
    assert_eq!(units.iter().map(|u| u.code.as_str()).collect::<Vec<_>>(), ["X_Y"]);
    let (count, _) = store
        .list_org(OrgKind::Area, &OrgFilter { name_icontains: Some("HALL".into()), ..Default::default() }, ALL)
        .await
        .unwrap();
    assert_eq!(count, 2);
}

/// Every engine's migration folder holds the same versions under the same names
/// (`migrations/README.md`), and versions follow each other without gaps: a database of either
/// engine at version N has the same schema.
#[test]
fn migration_folders_agree() {
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut folders = Vec::new();
    for engine in std::fs::read_dir(&top).unwrap() {
        let engine = engine.unwrap();
        if !engine.file_type().unwrap().is_dir() {
            continue;
        }
        let mut names: Vec<String> = std::fs::read_dir(engine.path())
            .unwrap()
            .map(|f| f.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        names.sort();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(name[..5], format!("{:04}_", i + 1), "{name}: versions are 0001, 0002, ... without gaps");
        }
        folders.push((engine.file_name().into_string().unwrap(), names));
    }
    for engine in ["sqlite", "postgres"] {
        assert!(folders.iter().any(|(name, _)| name == engine), "no {engine} folder: {folders:?}");
    }
    for (engine, names) in &folders {
        assert_eq!(names, &folders[0].1, "{engine} and {} differ", folders[0].0);
    }
}

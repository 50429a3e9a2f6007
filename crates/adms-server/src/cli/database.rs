//! `adms-bridge backup|restore|migrate-data`.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use adms_server::Config;
use adms_store::{Store, StoreOptions};

pub async fn backup(config: &Config, path: &Path) -> anyhow::Result<()> {
    if !config.database_url.starts_with("sqlite:") {
        anyhow::bail!("backup works on SQLite databases; back up a PostgreSQL database with pg_dump");
    }
    anyhow::ensure!(
        adms_store::sqlite_file(&config.database_url).is_some(),
        "an in-memory database has nothing to back up"
    );
    let store = super::open_existing(config).await?;
    let done = store.backup_to(path).await.with_context(|| format!("backing up to {}", path.display()));
    store.close().await;
    let done = done?;
    writeln!(
        std::io::stdout(),
        "backed up {} to {} ({} bytes, integrity checked); the master key file is not in it: keep its own backup",
        super::database_name(config),
        done.path.display(),
        done.bytes
    )?;
    Ok(())
}

pub async fn restore(config: &Config, path: &Path) -> anyhow::Result<()> {
    let done = adms_store::maintenance::restore(path, &config.database_url)
        .await
        .with_context(|| format!("restoring {} from {}", super::database_name(config), path.display()))?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "restored {} from {} (migration {})", done.database.display(), path.display(), done.version)?;
    if let Some(kept) = done.replaced {
        writeln!(stdout, "the replaced database is kept as {}", kept.display())?;
    }
    Ok(())
}

pub async fn migrate_data(from: &str, to: &str) -> anyhow::Result<()> {
    if let Some(path) = adms_store::sqlite_file(from)
        && !path.exists()
    {
        anyhow::bail!("no database at {} (--from)", path.display());
    }
    let source = Store::open(from, StoreOptions::default()).await.context("opening the source")?;
    let target = Store::open(to, StoreOptions::default()).await.context("opening the target")?;
    let mut last_table = String::new();
    let report = source
        .migrate_data_to(&target, |table, rows| {
            if table != last_table || rows % 100_000 < 2_000 {
                eprintln!("{table}: {rows} rows");
                last_table = table.to_owned();
            }
        })
        .await
        .context("copying")?;
    let mut out = std::io::stdout();
    for (table, rows, _) in &report.tables {
        writeln!(out, "{table:<22} {rows:>12}")?;
    }
    writeln!(out, "verified: every table's row count, and the punch checksum {}", report.punch_checksum)?;
    source.close().await;
    target.close().await;
    Ok(())
}

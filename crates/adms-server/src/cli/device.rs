//! `adms-bridge device …`: approval.

use std::io::Write as _;

use adms_server::Config;
use adms_store::{Approval, Page, TerminalFilter};

#[derive(Debug, clap::Subcommand)]
pub enum DeviceAction {
    /// List devices: SN, alias, approval, last seen (UTC; as of the server's last activity
    /// flush).
    List {
        /// Only devices waiting for approval.
        #[arg(long)]
        pending: bool,
    },
    /// Release a pending device's data.
    Approve { sn: String },
    /// Withdraw a device's approval: it is pending again, its data held from the API, webhooks
    /// and the roster, and it is sent nothing it was not sent by hand. A running server applies
    /// this to the device's own requests at its next restart (the API's
    /// `PATCH /api/v1/devices/SN` applies it at once).
    Reject { sn: String },
}

pub async fn run(action: DeviceAction, config: &Config) -> anyhow::Result<()> {
    let store = super::open_existing(config).await?;
    let mut stdout = std::io::stdout();
    match action {
        DeviceAction::List { pending } => {
            let mut offset = 0;
            loop {
                let page = Page { offset, limit: 500 };
                let (_, rows) = store.list_terminals(&TerminalFilter::default(), page).await?;
                for row in &rows {
                    if pending && row.approval != Approval::Pending.as_str() {
                        continue;
                    }
                    let alias = if row.alias.is_empty() { "-" } else { row.alias.as_str() };
                    writeln!(stdout, "{}\t{alias}\t{}\t{}", row.sn, row.approval, super::when(row.last_activity_at))?;
                }
                if rows.len() < 500 {
                    break;
                }
                offset += 500;
            }
        }
        DeviceAction::Approve { sn } => {
            anyhow::ensure!(store.set_approval(&sn, Approval::Approved).await?, "no device with SN '{sn}'");
            super::audit(&store, "device approve", &sn).await;
            writeln!(stdout, "approved {sn}")?;
        }
        DeviceAction::Reject { sn } => {
            anyhow::ensure!(store.set_approval(&sn, Approval::Pending).await?, "no device with SN '{sn}'");
            super::audit(&store, "device reject", &sn).await;
            writeln!(stdout, "{sn} is pending: its data is held until it is approved")?;
        }
    }
    store.close().await;
    Ok(())
}

//! The command queue against a real SQLite file: hand-out limits, de-duplication and
//! superseding, result matching per device, re-send and expiry.

use adms_protocol::DeviceCommand;
use adms_store::{
    CommandPolicy, CommandResultRow, DeviceFacts, EnqueueOutcome, NewCommand, NewDevice, Page, ResultOutcome, Store,
    StoreError, StoreOptions,
};

const SECOND: i64 = 1_000_000;
const NEVER: i64 = i64::MAX;

fn new(device_id: i64, command: DeviceCommand, key: Option<&str>) -> NewCommand {
    NewCommand { device_id, command, dedupe_key: key.map(str::to_owned), source: "test".into(), expires_at: NEVER }
}

fn option(i: usize) -> DeviceCommand {
    DeviceCommand::SetOption { key: "Delay".into(), value: format!("{i:0>100}") }
}

fn result(id: i64, code: i64) -> CommandResultRow {
    let head = format!("ID={id}&Return={code}&CMD=DATA");
    CommandResultRow {
        command_id: id.to_string(),
        return_code: Some(code),
        cmd: "DATA".into(),
        head: head.into_bytes(),
        payload: vec![],
    }
}

async fn polls_take_commands_in_order_within_count_and_byte_limits(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let device = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "Q1", ..Default::default() })
        .await
        .unwrap();
    let policy = CommandPolicy { max_per_poll: 4, max_poll_bytes: 300, ..CommandPolicy::default() };
    let commands: Vec<_> = (0..6).map(|i| new(device.id, option(i), None)).collect();
    let ids: Vec<i64> = store.enqueue_commands(&commands, 1).await.unwrap().into_iter().map(|e| e.id).collect();

    // Each line is ~120 bytes: two fit in 300, although four would be allowed by count.
    let first = store.take_due_commands(device.id, 2, &policy).await.unwrap();
    assert_eq!(first.commands.iter().map(|c| c.id).collect::<Vec<_>>(), ids[..2]);
    assert_eq!(first.commands[0].text, format!("SET OPTION Delay={:0>100}", 0));
    assert_eq!(first.next_due_at, Some(2), "commands are left: the next poll looks again");
    let second = store.take_due_commands(device.id, 3, &policy).await.unwrap();
    assert_eq!(second.commands.iter().map(|c| c.id).collect::<Vec<_>>(), ids[2..4]);

    // A single command over the byte budget still goes, alone.
    let tight = CommandPolicy { max_poll_bytes: 10, ..policy.clone() };
    let third = store.take_due_commands(device.id, 4, &tight).await.unwrap();
    assert_eq!(third.commands.len(), 1);
    let fourth = store.take_due_commands(device.id, 5, &policy).await.unwrap();
    assert_eq!(fourth.commands.len(), 1);
    let empty = store.take_due_commands(device.id, 6, &policy).await.unwrap();
    assert!(empty.commands.is_empty());
    assert_eq!(empty.next_due_at, Some(2 + policy.resend_after_micros), "the earliest re-send");
}

async fn dedupe_key_adds_nothing_for_the_same_command_and_supersedes_a_different_one(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let device = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "D1", ..Default::default() })
        .await
        .unwrap();
    let delete = DeviceCommand::UserDelete { pin: "5".into() };
    let query = DeviceCommand::QueryUserinfo { pin: Some("5".into()) };
    let a = store.enqueue_commands(&[new(device.id, delete.clone(), Some("user:5"))], 1).await.unwrap()[0];
    let other = store.enqueue_commands(&[new(device.id, DeviceCommand::Info, None)], 1).await.unwrap()[0];
    let b = store.enqueue_commands(&[new(device.id, delete.clone(), Some("user:5"))], 2).await.unwrap()[0];
    assert_eq!((b.id, b.outcome), (a.id, EnqueueOutcome::AlreadyQueued));
    let c = store.enqueue_commands(&[new(device.id, query, Some("user:5"))], 3).await.unwrap()[0];
    assert_eq!(c.outcome, EnqueueOutcome::Superseded { previous: a.id });
    let (count, rows) = store.list_commands(device.id, Some("cancelled"), Page { offset: 0, limit: 10 }).await.unwrap();
    assert_eq!((count, rows[0].id, rows[0].result.as_deref()), (1, a.id, Some("superseded")));
    // The latest desire goes last, after what was queued in between.
    let taken = store.take_due_commands(device.id, 4, &CommandPolicy::default()).await.unwrap();
    assert_eq!(taken.commands.iter().map(|c| c.id).collect::<Vec<_>>(), [other.id, c.id]);
    // Once sent, the key is free again: the device may have run the old one already.
    let d = store.enqueue_commands(&[new(device.id, delete, Some("user:5"))], 5).await.unwrap()[0];
    assert_eq!(d.outcome, EnqueueOutcome::Queued);

    // Invalid values and unknown devices are refused, and nothing of the batch is kept.
    let hostile = DeviceCommand::UserDelete { pin: "5\n".into() };
    let batch = [new(device.id, DeviceCommand::Reboot, None), new(device.id, hostile, None)];
    assert!(matches!(store.enqueue_commands(&batch, 6).await, Err(StoreError::InvalidCommand(_))));
    assert!(matches!(
        store.enqueue_commands(&[new(9999, DeviceCommand::Reboot, None)], 6).await,
        Err(StoreError::NotFound)
    ));
    let (queued, _) = store.list_commands(device.id, Some("queued"), Page { offset: 0, limit: 10 }).await.unwrap();
    assert_eq!(queued, 1, "only the re-queued delete");
}

async fn results_complete_only_the_posting_devices_sent_commands(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let a = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "R1", ..Default::default() })
        .await
        .unwrap();
    let b = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "R2", ..Default::default() })
        .await
        .unwrap();
    let policy = CommandPolicy::default();
    let sent = store.enqueue_commands(&[new(a.id, DeviceCommand::Check, None)], 1).await.unwrap()[0].id;
    let queued = store.enqueue_commands(&[new(a.id, DeviceCommand::Check, None)], 1).await.unwrap()[0].id;
    let policy_one = CommandPolicy { max_per_poll: 1, ..policy.clone() };
    store.take_due_commands(a.id, 2, &policy_one).await.unwrap();
    let facts = DeviceFacts::default();

    let outcomes = store.store_command_results(b.id, &[result(sent, 0)], &[], &facts, 3, &policy).await.unwrap();
    assert_eq!(outcomes, [ResultOutcome::OtherDevice]);
    assert_eq!(store.command(sent).await.unwrap().unwrap().state, "sent");
    let outcomes = store
        .store_command_results(
            a.id,
            &[result(queued, 0), result(424242, 0), result(sent, -1002)],
            &[],
            &facts,
            4,
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [ResultOutcome::NotSent, ResultOutcome::UnknownId, ResultOutcome::Applied]);
    let done = store.command(sent).await.unwrap().unwrap();
    assert_eq!(
        (done.state.as_str(), done.return_code, done.result.as_deref()),
        ("failed", Some(-1002), Some("not supported"))
    );
    let again = store.store_command_results(a.id, &[result(sent, 0)], &[], &facts, 5, &policy).await.unwrap();
    assert_eq!(again, [ResultOutcome::Duplicate]);
    assert_eq!(store.command(sent).await.unwrap().unwrap().state, "failed", "the first answer stands");
    assert_eq!(store.command(queued).await.unwrap().unwrap().state, "queued");
}

async fn unanswered_commands_are_resent_then_expire_and_old_ones_expire_by_sweep(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let device = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "E1", ..Default::default() })
        .await
        .unwrap();
    let policy = CommandPolicy { resend_after_micros: 30 * SECOND, max_sends: 2, ..CommandPolicy::default() };
    let id = store.enqueue_commands(&[new(device.id, DeviceCommand::ClearLog, None)], 0).await.unwrap()[0].id;
    let short = NewCommand { expires_at: 100 * SECOND, ..new(device.id, DeviceCommand::Reboot, None) };
    let short_id = store.enqueue_commands(&[short], 0).await.unwrap()[0].id;
    // The ClearLog goes first; the REBOOT follows in the same poll (REBOOT is last, not first).
    let t0 = store.take_due_commands(device.id, SECOND, &policy).await.unwrap();
    assert_eq!(t0.commands.iter().map(|c| c.id).collect::<Vec<_>>(), [id, short_id]);
    assert!(store.take_due_commands(device.id, 2 * SECOND, &policy).await.unwrap().commands.is_empty());
    let t1 = store.take_due_commands(device.id, 32 * SECOND, &policy).await.unwrap();
    assert_eq!(t1.commands.len(), 2, "both re-sent");
    assert_eq!(store.command(id).await.unwrap().unwrap().send_count, 2);
    // Past max_sends without an answer: expired by the sweep, which needs no poll.
    assert_eq!(store.expire_due_commands(50 * SECOND, &policy).await.unwrap(), 0, "not yet");
    assert_eq!(store.expire_due_commands(63 * SECOND, &policy).await.unwrap(), 2);
    let expired = store.command(id).await.unwrap().unwrap();
    assert_eq!((expired.state.as_str(), expired.result.as_deref()), ("expired", Some("no answer after 2 sends")));
    assert_eq!(store.expire_due_commands(64 * SECOND, &policy).await.unwrap(), 0, "expired once");

    let queued_only = NewCommand { expires_at: 200 * SECOND, ..new(device.id, DeviceCommand::Info, None) };
    let queued_id = store.enqueue_commands(&[queued_only], 100 * SECOND).await.unwrap()[0].id;
    let t = store.take_due_commands(device.id, 201 * SECOND, &policy).await.unwrap();
    assert!(t.commands.is_empty(), "an expired command is never handed out");
    assert_eq!(t.completed, 1);
    let row = store.command(queued_id).await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.result.as_deref()), ("expired", Some("not delivered before it expired")));
    assert_eq!(t.next_due_at, None, "nothing open");
}

/// A command state outside the vocabulary (a damaged row, or one written by a newer release)
/// fails the result instead of being read as some state by default: the device gets an error
/// and re-sends, and nothing is completed on a guess.
#[tokio::test]
async fn an_unknown_stored_state_is_an_error_not_a_default() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/unknown.db", dir.path().display());
    let store = Store::open(&url, StoreOptions::default()).await.expect("open");
    let device = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "U1", ..Default::default() })
        .await
        .unwrap();
    let policy = CommandPolicy::default();
    let id = store.enqueue_commands(&[new(device.id, DeviceCommand::Check, None)], 1).await.unwrap()[0].id;
    store.take_due_commands(device.id, 2, &policy).await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE device_commands SET state = 'parked' WHERE id = $1").bind(id).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();

    let facts = DeviceFacts::default();
    let stored = store.store_command_results(device.id, &[result(id, 0)], &[], &facts, 3, &policy).await;
    assert!(matches!(stored, Err(StoreError::Database(_))), "{stored:?}");
}

/// A command queued by one process wakes its device in another (the watch reports it), and two
/// processes polling for the same device hand each command out once.
async fn other_processes_see_queued_commands_and_hand_each_out_once(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let other = store.second_process().await;
    let device = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "W1", ..Default::default() })
        .await
        .unwrap();
    let mut watch = other.watch_queued_commands().await.unwrap();
    let ids: Vec<i64> = store
        .enqueue_commands(&(0..20).map(|i| new(device.id, option(i), None)).collect::<Vec<_>>(), 1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let woken = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next()).await.expect("woken").unwrap();
    assert_eq!(woken, [device.id]);

    // Both processes poll for the device at once, again and again, until the queue is empty.
    let policy = CommandPolicy { max_per_poll: 3, ..CommandPolicy::default() };
    let poll = |s: Store, policy: CommandPolicy| async move {
        let mut got = Vec::new();
        for now in 2..40 {
            got.extend(s.take_due_commands(device.id, now, &policy).await.unwrap().commands.into_iter().map(|c| c.id));
        }
        got
    };
    let (a, b) = tokio::join!(
        tokio::spawn(poll(store.store().clone(), policy.clone())),
        tokio::spawn(poll(other.clone(), policy.clone()))
    );
    let mut handed: Vec<i64> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    handed.sort_unstable();
    assert_eq!(handed, ids, "every command handed out exactly once");
}

crate::on_both_engines!(
    other_processes_see_queued_commands_and_hand_each_out_once,
    polls_take_commands_in_order_within_count_and_byte_limits,
    dedupe_key_adds_nothing_for_the_same_command_and_supersedes_a_different_one,
    results_complete_only_the_posting_devices_sent_commands,
    unanswered_commands_are_resent_then_expire_and_old_ones_expire_by_sweep,
);

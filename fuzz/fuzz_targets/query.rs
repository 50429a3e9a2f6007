//! Device query strings (`SN=..&table=..&INFO=..`) and what the server derives from them: the
//! serial number, the upload table and the INFO facts.
#![no_main]

use adms_protocol::UploadTable;
use adms_protocol::info::parse_info;
use adms_protocol::query::{DeviceQuery, MAX_SN_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The server hands the parser the URI's query, which is text.
    let query = String::from_utf8_lossy(data);
    let q = DeviceQuery::parse(&query);
    if let Ok(sn) = q.serial() {
        assert!(!sn.is_empty() && sn.len() <= MAX_SN_LEN && sn.bytes().all(|b| b.is_ascii_graphic()));
    }
    let table = UploadTable::from_query(q.table.as_deref(), q.op_stamp.is_some());
    if table != UploadTable::Other {
        assert_eq!(UploadTable::from_query(Some(table.as_str()), false), table);
    }
    if let Some(info) = q.info.as_deref() {
        let info = parse_info(info);
        assert!(info.user_count.is_none_or(|n| n >= 0));
    }
    let _ = q.is_handshake();
});

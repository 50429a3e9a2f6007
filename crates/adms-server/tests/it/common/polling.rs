//! A device's side of the command queue, for the stories that check what reaches a terminal or
//! controller: the command lines of one poll, and their acknowledgement.

use super::Device;

/// The command lines of one poll, as `(id, text)`.
pub async fn poll(dev: &Device<'_>) -> Vec<(i64, String)> {
    let r = dev.get(&format!("/iclock/getrequest?SN={}", dev.sn)).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    if text == "OK" {
        return Vec::new();
    }
    text.lines()
        .map(|line| {
            let rest = line.strip_prefix("C:").unwrap_or_else(|| panic!("not a command line: {line:?}"));
            let (id, command) = rest.split_once(':').expect("C:<id>:<command>");
            (id.parse().expect("numeric id"), command.to_owned())
        })
        .collect()
}

/// Acknowledges every command of a poll with `Return=0`.
pub async fn acknowledge(dev: &Device<'_>, commands: &[(i64, String)]) {
    let body: String = commands.iter().map(|(id, _)| format!("ID={id}&Return=0&CMD=DATA\n")).collect();
    let r = dev.post(&format!("/iclock/devicecmd?SN={}", dev.sn), body.as_bytes()).await;
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
}

/// The texts of a poll's commands.
pub fn texts(commands: &[(i64, String)]) -> Vec<&str> {
    commands.iter().map(|(_, text)| text.as_str()).collect()
}

//! The `INFO=` value of a `getrequest` poll (`protocol.md` §3.8): a comma list of firmware
//! version, counts and the device IP. Old firmware sends 6 values, new firmware 13.

/// Device facts from `INFO=`, borrowing from the (already URL-decoded) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceInfo<'a> {
    pub firmware: Option<&'a str>,
    pub user_count: Option<i64>,
    pub fp_count: Option<i64>,
    pub attlog_count: Option<i64>,
    pub ip_address: Option<&'a str>,
    pub fp_algorithm: Option<&'a str>,
    pub face_algorithm: Option<&'a str>,
    pub face_count: Option<i64>,
    pub functions: Option<&'a str>,
    pub card_count: Option<i64>,
    pub user_photo_count: Option<i64>,
    pub att_photo_count: Option<i64>,
}

/// Parses an `INFO=` value; unparsable counts become `None`, never an error.
pub fn parse_info(value: &str) -> DeviceInfo<'_> {
    let mut info = DeviceInfo::default();
    fn text(s: &str) -> Option<&str> {
        let s = s.trim();
        (!s.is_empty()).then_some(s)
    }
    for (i, v) in value.split(',').enumerate() {
        let count = || v.trim().parse::<i64>().ok().filter(|n| *n >= 0);
        match i {
            0 => info.firmware = text(v),
            1 => info.user_count = count(),
            2 => info.fp_count = count(),
            3 => info.attlog_count = count(),
            4 => info.ip_address = text(v),
            5 => info.fp_algorithm = text(v),
            6 => info.face_algorithm = text(v),
            8 => info.face_count = count(),
            9 => info.functions = text(v),
            10 => info.card_count = count(),
            11 => info.user_photo_count = count(),
            12 => info.att_photo_count = count(),
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_and_six_value_forms() {
        let i = parse_info("Ver 8.0.4.3-20230217,12,30,4512,192.168.1.201,10,-1,0,0,111,5,0,0");
        assert_eq!(i.firmware, Some("Ver 8.0.4.3-20230217"));
        assert_eq!((i.user_count, i.fp_count, i.attlog_count), (Some(12), Some(30), Some(4512)));
        assert_eq!(i.ip_address, Some("192.168.1.201"));
        assert_eq!(i.face_algorithm, Some("-1"));
        assert_eq!(i.card_count, Some(5));
        let i = parse_info("Ver 6.60,1,2,3,10.0.0.2,10");
        assert_eq!((i.user_count, i.face_count, i.functions), (Some(1), None, None));
        let i = parse_info("x,notanumber");
        assert_eq!(i.user_count, None);
        assert_eq!(parse_info(""), DeviceInfo::default());
    }
}

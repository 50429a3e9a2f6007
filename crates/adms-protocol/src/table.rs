//! The `table=` of an upload, matched case-insensitively (`protocol.md` §10.10).

/// Which table a `POST /iclock/cdata` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UploadTable {
    AttLog,
    OperLog,
    BioData,
    AttPhoto,
    Options,
    RtLog,
    RtState,
    TableData,
    ErrorLog,
    IdCard,
    /// Anything else: stored raw and acknowledged.
    Other,
}

impl UploadTable {
    /// Maps a `table=` value. A missing table on legacy firmware means ATTLOG, or OPERLOG when the
    /// query carries `OpStamp` (`protocol.md` §3.3, §3.4).
    pub fn from_query(table: Option<&str>, has_op_stamp: bool) -> UploadTable {
        let Some(table) = table else {
            return if has_op_stamp { UploadTable::OperLog } else { UploadTable::AttLog };
        };
        const NAMES: &[(&str, UploadTable)] = &[
            ("ATTLOG", UploadTable::AttLog),
            ("OPERLOG", UploadTable::OperLog),
            ("BIODATA", UploadTable::BioData),
            ("ATTPHOTO", UploadTable::AttPhoto),
            ("options", UploadTable::Options),
            ("rtlog", UploadTable::RtLog),
            ("rtstate", UploadTable::RtState),
            ("tabledata", UploadTable::TableData),
            ("ERRORLOG", UploadTable::ErrorLog),
            ("IDCARD", UploadTable::IdCard),
        ];
        NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(table.trim())).map_or(UploadTable::Other, |&(_, t)| t)
    }

    /// Canonical name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadTable::AttLog => "ATTLOG",
            UploadTable::OperLog => "OPERLOG",
            UploadTable::BioData => "BIODATA",
            UploadTable::AttPhoto => "ATTPHOTO",
            UploadTable::Options => "options",
            UploadTable::RtLog => "rtlog",
            UploadTable::RtState => "rtstate",
            UploadTable::TableData => "tabledata",
            UploadTable::ErrorLog => "ERRORLOG",
            UploadTable::IdCard => "IDCARD",
            UploadTable::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_legacy_defaults_apply() {
        assert_eq!(UploadTable::from_query(Some("attlog"), false), UploadTable::AttLog);
        assert_eq!(UploadTable::from_query(Some("OperLog"), false), UploadTable::OperLog);
        assert_eq!(UploadTable::from_query(Some("OPTIONS"), false), UploadTable::Options);
        assert_eq!(UploadTable::from_query(Some("RTLOG"), false), UploadTable::RtLog);
        assert_eq!(UploadTable::from_query(Some("SOMETHING"), false), UploadTable::Other);
        assert_eq!(UploadTable::from_query(None, false), UploadTable::AttLog);
        assert_eq!(UploadTable::from_query(None, true), UploadTable::OperLog);
    }
}

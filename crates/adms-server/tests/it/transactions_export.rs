//! The transactions export as spreadsheets and scripts read it: the workbook's cell types,
//! number formats and column widths (read back by calamine, and from the workbook's own XML),
//! and the byte order mark of the delimited files.

use std::io::Read;

use calamine::{Data, Reader, Xlsx};
use serde_json::{Value, json};

use crate::common::{Api, Device, Server};

const SN: &str = "CKJF0000000000000001";

/// A server with one employee (`016`, José Núñez) and three punches of two PINs.
async fn server_with_punches(dir: &std::path::Path) -> (Server, Api) {
    let server = Server::in_process(dir, &[]).await;
    let api = Api::login(&server).await;
    let (status, employee) = api
        .post_json(
            "/personnel/api/employees/",
            &json!({ "emp_code": "016", "first_name": "José", "last_name": "Núñez", "department": 1, "area": [1] }),
        )
        .await;
    assert_eq!(status, 201, "{employee}");
    let device = Device { server: &server, sn: SN.into() };
    assert_eq!(device.handshake().await.status, 200);
    let punches = "016\t2026-11-20 08:00:00\t0\t1\t007\t0\t0\n\
                   016\t2026-11-20 17:30:15\t1\t1\t\t0\t0\n\
                   0042\t2026-11-21 09:05:00\t0\t15\t\t0\t0\n";
    assert_eq!(device.attlog(punches.as_bytes()).await.text(), "OK: 3");
    (server, api)
}

async fn download(api: &Api, query: &str) -> reqwest::Response {
    api.client
        .get(format!("http://{}/iclock/api/transactions/export/?{query}", api.server_addr))
        .header("Authorization", format!("Token {}", api.token))
        .send()
        .await
        .unwrap()
}

async fn file(api: &Api, query: &str) -> Vec<u8> {
    let response = download(api, query).await;
    assert_eq!(response.status(), 200, "{query}");
    response.bytes().await.unwrap().to_vec()
}

/// The value of attribute `name` in an element's text.
fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = element.find(&key)? + key.len();
    let end = element[start..].find('"')? + start;
    Some(&element[start..end])
}

/// The opening tags `<tag …>` in `xml`, in order.
fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag} ");
    xml.match_indices(&open)
        .map(|(start, _)| {
            let end = xml[start..].find('>').map_or(xml.len(), |e| start + e + 1);
            &xml[start..end]
        })
        .collect()
}

/// The workbook's parts as text.
struct WorkbookXml {
    sheet: String,
    styles: String,
}

impl WorkbookXml {
    fn read(bytes: &[u8]) -> WorkbookXml {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip file");
        let mut part = |name: &str| {
            let mut text = String::new();
            archive.by_name(name).unwrap_or_else(|e| panic!("{name}: {e}")).read_to_string(&mut text).unwrap();
            text
        };
        WorkbookXml { sheet: part("xl/worksheets/sheet1.xml"), styles: part("xl/styles.xml") }
    }

    /// The number format of the cell style `index` (`cellXfs`): its format code, with the
    /// built-in ones this workbook may use named by their codes.
    fn number_format(&self, index: usize) -> String {
        let xfs = &self.styles[self.styles.find("<cellXfs").expect("cellXfs")..];
        let xfs = &xfs[..xfs.find("</cellXfs>").expect("end of cellXfs")];
        let xf = elements(xfs, "xf")[index];
        let id = attr(xf, "numFmtId").unwrap_or("0");
        match id {
            "0" => "General".to_owned(),
            "49" => "@".to_owned(),
            custom => elements(&self.styles, "numFmt")
                .into_iter()
                .find(|f| attr(f, "numFmtId") == Some(custom))
                .and_then(|f| attr(f, "formatCode"))
                .unwrap_or_else(|| panic!("number format {custom} not defined"))
                .to_owned(),
        }
    }

    /// The number format of the cell at `reference` (`C2`).
    fn cell_format(&self, reference: &str) -> String {
        let cell = elements(&self.sheet, "c")
            .into_iter()
            .find(|c| attr(c, "r") == Some(reference))
            .unwrap_or_else(|| panic!("no cell {reference}"));
        self.number_format(attr(cell, "s").map_or(0, |s| s.parse().unwrap()))
    }

    /// Each column's width and number format, from `<cols>`, by 0-based column.
    fn columns(&self) -> Vec<(f64, String)> {
        let mut columns = Vec::new();
        for col in elements(&self.sheet, "col") {
            let (min, max): (usize, usize) =
                (attr(col, "min").unwrap().parse().unwrap(), attr(col, "max").unwrap().parse().unwrap());
            let width: f64 = attr(col, "width").expect("width").parse().unwrap();
            let format = self.number_format(attr(col, "style").map_or(0, |s| s.parse().unwrap()));
            for index in min..=max {
                assert_eq!(index, columns.len() + 1, "columns listed in order without gaps: {col}");
                columns.push((width, format.clone()));
            }
        }
        columns
    }
}

/// Excel's serial number of a `YYYY-MM-DD HH:MM:SS` time: days since 1899-12-30.
fn excel_serial(text: &str) -> f64 {
    let time: jiff::civil::DateTime = text.parse().unwrap();
    let epoch = jiff::civil::date(1899, 12, 30).at(0, 0, 0, 0);
    epoch.duration_until(time).as_secs_f64() / 86_400.0
}

#[tokio::test]
async fn workbook_has_date_time_cells_text_codes_and_sized_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = server_with_punches(dir.path()).await;
    let listed = api.transactions("").await;
    assert_eq!(listed.len(), 3);
    let bytes = file(&api, "export_type=xlsx").await;

    let mut workbook = Xlsx::new(std::io::Cursor::new(bytes.clone())).expect("a valid xlsx file");
    let sheet = workbook.worksheet_range("transactions").expect("worksheet");
    let rows: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
    let header: Vec<String> = rows[0].iter().map(ToString::to_string).collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("column {name}"));
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (row, record) in rows[1..].iter().zip(&listed) {
        for name in ["punch_time", "upload_time"] {
            let text = record[name].as_str().unwrap();
            match &row[column(name)] {
                Data::DateTime(cell) => {
                    assert!(cell.is_datetime(), "{name}: {cell:?}");
                    let expected = excel_serial(&text[..19]);
                    assert!((cell.as_f64() - expected).abs() < 0.5 / 86_400.0, "{name}: {cell:?} is not {text}");
                }
                other => panic!("{name}: a date-time cell expected, found {other:?}"),
            }
        }
        assert_eq!(row[column("id")], Data::Float(record["id"].as_f64().unwrap()), "ids are numbers");
        assert_eq!(row[column("emp_code")], Data::String(record["emp_code"].as_str().unwrap().into()));
        assert_eq!(row[column("terminal_sn")], Data::String(SN.into()));
    }
    let first = rows[1..].iter().find(|r| r[column("work_code")] == Data::String("007".into()));
    let first = first.expect("the work code 007 kept as text");
    assert_eq!(first[column("emp_code")], Data::String("016".into()), "the PIN keeps its leading zero");
    assert_eq!(first[column("first_name")], Data::String("José".into()));

    // The workbook's own XML: formats of the cells and of the columns, and the widths.
    let xml = WorkbookXml::read(&bytes);
    let letter = |name: &str| char::from(b'A' + u8::try_from(column(name)).unwrap());
    for row in 2..=4 {
        assert_eq!(xml.cell_format(&format!("{}{row}", letter("emp_code"))), "@", "PIN cells are text");
        assert_eq!(xml.cell_format(&format!("{}{row}", letter("punch_time"))), "yyyy-mm-dd hh:mm:ss");
        assert_eq!(xml.cell_format(&format!("{}{row}", letter("upload_time"))), "yyyy-mm-dd hh:mm:ss");
        assert_eq!(xml.cell_format(&format!("{}{row}", letter("id"))), "General");
    }
    let columns = xml.columns();
    assert_eq!(columns.len(), header.len(), "every column has a width");
    for name in ["emp_code", "punch_state", "work_code", "terminal_sn"] {
        assert_eq!(columns[column(name)].1, "@", "{name}: a text column, so values typed later stay text");
    }
    assert_eq!(columns[column("first_name")].1, "General");
    let width = |name: &str| columns[column(name)].0;
    assert!(width("punch_time") >= 19.0 && width("upload_time") >= 19.0, "date-times fit: {columns:?}");
    assert!(width("terminal_sn") >= SN.len() as f64, "the serial number fits: {columns:?}");
    assert!(width("punch_state_display") >= "punch_state_display".len() as f64, "headers fit: {columns:?}");
    assert!(width("id") < 10.0, "short values, narrow column: {columns:?}");
    assert!(columns.iter().all(|(w, _)| *w <= 52.0), "{columns:?}");
}

#[tokio::test]
async fn delimited_files_start_with_a_byte_order_mark_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = server_with_punches(dir.path()).await;
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    for export_type in ["csv", "txt"] {
        let plain = file(&api, &format!("export_type={export_type}")).await;
        assert!(plain.starts_with(b"id"), "{export_type}: no mark by default: {:?}", &plain[..8]);
        assert!(String::from_utf8(plain.clone()).unwrap().contains("José"), "UTF-8");
        for yes in ["1", "true"] {
            let marked = file(&api, &format!("export_type={export_type}&bom={yes}")).await;
            assert_eq!(&marked[..3], BOM, "{export_type}&bom={yes}");
            assert_eq!(&marked[3..], &plain[..], "{export_type}: the same file after the mark");
        }
        let unmarked = file(&api, &format!("export_type={export_type}&bom=0")).await;
        assert_eq!(unmarked, plain);
    }
    // The workbook has no use for it (its XML declares its encoding): the same file either way
    // but for the creation time inside, so compare what a reader sees.
    let read = |bytes: Vec<u8>| {
        let mut workbook = Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
        workbook.worksheet_range("transactions").unwrap().rows().map(<[Data]>::to_vec).collect::<Vec<_>>()
    };
    assert_eq!(read(file(&api, "export_type=xlsx&bom=1").await), read(file(&api, "export_type=xlsx").await));
    let response = download(&api, "export_type=csv&bom=maybe").await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "bom": ["Must be a valid boolean."] }));
}

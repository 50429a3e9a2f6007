//! Event, verify-mode and reader names as CVSecurity shows them. Clients string-compare them
//! (`cvsecurity_api.md` §4: a PHP client compares `eventName` with Spanish "Usuario no
//! registrado"), and CVSecurity takes them from its server UI language, so they come from one
//! table per language keyed by the numeric code, the language set once for the server
//! (`[cvsecurity] language`).
//!
//! English is `adms_protocol::labels` (the names CVSecurity's English UI uses for the event codes,
//! ZKBio Time's for the verify modes, which the reference does not list separately). Spanish and
//! Chinese are ours, written in the vendor's vocabulary: the reference confirms only "Usuario no
//! registrado" (code 27) and the reader suffixes (`-Entrada`/`-Salida`, `-入`/`-出`). A client that
//! compares another name with different words needs only its line here changed.

use adms_protocol::labels;

pub use crate::config::Language;

impl Language {
    /// The name of an `rtlog` event code; a code without a name is `Event <code>`.
    pub fn event(self, code: Option<i64>) -> String {
        let Some(code) = code else {
            return match self {
                Language::En => "Unknown",
                Language::Es => "Desconocido",
                Language::Zh => "未知",
            }
            .to_owned();
        };
        let named = match self {
            Language::En => labels::access_event(code),
            Language::Es => event_es(code),
            Language::Zh => event_zh(code),
        };
        named.map_or_else(
            || match self {
                Language::En => format!("Event {code}"),
                Language::Es => format!("Evento {code}"),
                Language::Zh => format!("事件 {code}"),
            },
            str::to_owned,
        )
    }

    /// The name of `rtlog`'s `verifytype`: a number (old style); anything else (a C3's
    /// 32-character bit string) is "Other".
    pub fn verify_mode(self, verify_type: &str) -> &'static str {
        let code = match verify_type.trim().parse::<i64>() {
            Ok(code) if verify_type.trim().len() <= 3 => code,
            _ => -1,
        };
        match self {
            Language::En => labels::verify_type(code),
            Language::Es => verify_es(code),
            Language::Zh => verify_zh(code),
        }
    }

    /// A reader's name: its door's, with the side (`in_out` 1 is out, anything else in).
    pub fn reader(self, door_name: &str, in_out: Option<i64>) -> String {
        let out = in_out == Some(1);
        let side = match (self, out) {
            (Language::En, false) => "-In",
            (Language::En, true) => "-Out",
            (Language::Es, false) => "-Entrada",
            (Language::Es, true) => "-Salida",
            (Language::Zh, false) => "-入",
            (Language::Zh, true) => "-出",
        };
        format!("{door_name}{side}")
    }
}

/// CVSecurity's `eventLevel`: 0 normal, 1 abnormal (warning), 2 alarm, by the code's band.
pub fn event_level(code: Option<i64>) -> i64 {
    match code.map_or("normal", labels::access_event_level) {
        "alarm" => 2,
        "error" => 1,
        _ => 0,
    }
}

fn event_es(code: i64) -> Option<&'static str> {
    Some(match code {
        0 => "Apertura con verificación normal",
        1 => "Verificación durante el horario de paso libre",
        2 => "Apertura por primera persona",
        3 => "Apertura multipersona",
        4 => "Apertura con contraseña de emergencia",
        5 => "Apertura durante el horario de paso libre",
        6 => "Evento de vinculación activado",
        7 => "Cancelar alarma",
        8 => "Apertura remota",
        9 => "Cierre remoto",
        10 => "Desactivar el horario de paso libre del día",
        11 => "Activar el horario de paso libre del día",
        12 => "Abrir salida auxiliar",
        13 => "Cerrar salida auxiliar",
        20 => "Intervalo de operación demasiado corto",
        21 => "Verificación en horario inactivo de la puerta",
        22 => "Horario no válido",
        23 => "Acceso denegado",
        24 => "Anti-passback",
        25 => "Interbloqueo",
        26 => "Esperando verificación multipersona",
        27 => "Usuario no registrado",
        28 => "Tiempo de apertura agotado",
        29 => "Tarjeta caducada",
        30 => "Contraseña incorrecta",
        100 => "Alarma de sabotaje",
        101 => "Apertura con contraseña de coacción",
        102 => "Puerta forzada",
        103 => "Apertura con huella de coacción",
        105 => "No se puede conectar con el servidor",
        200 => "Puerta abierta correctamente",
        201 => "Puerta cerrada correctamente",
        202 => "Apertura con botón de salida",
        204 => "Fin del horario de paso libre",
        205 => "Apertura normal remota",
        206 => "Dispositivo iniciado",
        208 => "Apertura por superusuario",
        209 => "Botón de salida (bloqueado)",
        214 => "Conectado al servidor",
        220 => "Entrada auxiliar desconectada",
        221 => "Entrada auxiliar en cortocircuito",
        _ => return None,
    })
}

fn event_zh(code: i64) -> Option<&'static str> {
    Some(match code {
        0 => "正常验证开门",
        1 => "常开时间段内验证",
        2 => "首人开门",
        3 => "多人开门",
        4 => "紧急状态密码开门",
        5 => "常开时间段开门",
        6 => "触发联动事件",
        7 => "取消报警",
        8 => "远程开门",
        9 => "远程关门",
        10 => "禁用当天常开时间段",
        11 => "启用当天常开时间段",
        12 => "开启辅助输出",
        13 => "关闭辅助输出",
        20 => "操作间隔太短",
        21 => "门非有效时间段验证开门",
        22 => "非法时间段",
        23 => "非法访问",
        24 => "反潜",
        25 => "互锁",
        26 => "多人验证等待",
        27 => "人未登记",
        28 => "门开超时",
        29 => "卡已过有效期",
        30 => "密码错误",
        100 => "防拆报警",
        101 => "胁迫密码开门",
        102 => "门被意外打开",
        103 => "胁迫指纹开门",
        105 => "无法连接服务器",
        200 => "门已打开",
        201 => "门已关闭",
        202 => "出门按钮开门",
        204 => "常开时间段结束",
        205 => "远程开门常开",
        206 => "设备启动",
        208 => "超级用户开门",
        209 => "出门按钮(锁定)",
        214 => "成功连接服务器",
        220 => "辅助输入点断开",
        221 => "辅助输入点短路",
        _ => return None,
    })
}

fn verify_es(code: i64) -> &'static str {
    match code {
        0 => "Cualquiera",
        1 => "Huella",
        2 => "Número de usuario",
        3 => "Contraseña",
        4 => "Tarjeta",
        5 => "Huella/Contraseña",
        6 => "Huella/Tarjeta",
        7 => "Contraseña/Tarjeta",
        8 => "Número de usuario y huella",
        9 => "Huella y contraseña",
        10 => "Huella y tarjeta",
        11 => "Contraseña y tarjeta",
        12 => "Huella, contraseña y tarjeta",
        13 => "Número de usuario, huella y contraseña",
        14 => "Huella y tarjeta o huella y número de usuario",
        15 => "Rostro",
        16 => "Rostro y huella",
        17 => "Rostro y contraseña",
        18 => "Rostro y tarjeta",
        19 => "Rostro, huella y tarjeta",
        20 => "Rostro, huella y contraseña",
        21 => "Vena dactilar",
        22 => "Vena dactilar y contraseña",
        23 => "Vena dactilar y tarjeta",
        24 => "Vena dactilar, contraseña y tarjeta",
        25 => "Palma",
        26 => "Palma y tarjeta",
        27 => "Palma y rostro",
        28 => "Palma y huella",
        29 => "Palma, huella y rostro",
        _ => "Otro",
    }
}

fn verify_zh(code: i64) -> &'static str {
    match code {
        0 => "任意",
        1 => "指纹",
        2 => "工号",
        3 => "密码",
        4 => "卡",
        5 => "指纹/密码",
        6 => "指纹/卡",
        7 => "密码/卡",
        8 => "工号+指纹",
        9 => "指纹+密码",
        10 => "指纹+卡",
        11 => "密码+卡",
        12 => "指纹+密码+卡",
        13 => "工号+指纹+密码",
        14 => "指纹+卡/工号+指纹",
        15 => "人脸",
        16 => "人脸+指纹",
        17 => "人脸+密码",
        18 => "人脸+卡",
        19 => "人脸+指纹+卡",
        20 => "人脸+指纹+密码",
        21 => "指静脉",
        22 => "指静脉+密码",
        23 => "指静脉+卡",
        24 => "指静脉+密码+卡",
        25 => "掌纹",
        26 => "掌纹+卡",
        27 => "掌纹+人脸",
        28 => "掌纹+指纹",
        29 => "掌纹+指纹+人脸",
        _ => "其他",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LANGUAGES: [Language; 3] = [Language::En, Language::Es, Language::Zh];

    #[test]
    fn codes_have_names_and_levels() {
        assert_eq!(Language::En.event(Some(27)), "Unregistered Personnel");
        assert_eq!(Language::Es.event(Some(27)), "Usuario no registrado", "the name a client compares");
        assert_eq!(Language::Zh.event(Some(102)), "门被意外打开");
        assert_eq!(Language::En.event(Some(9999)), "Event 9999");
        assert_eq!(Language::Es.event(Some(9999)), "Evento 9999");
        assert_eq!((event_level(Some(0)), event_level(Some(23)), event_level(Some(102))), (0, 1, 2));
        assert_eq!(Language::En.verify_mode("4"), "Card");
        assert_eq!(Language::Es.verify_mode("4"), "Tarjeta");
        assert_eq!(Language::En.verify_mode("00000000000000000000000000000000"), "Other");
        assert_eq!(Language::Zh.verify_mode("00000000000000000000000000000000"), "其他");
        assert_eq!(Language::Es.reader("Puerta-1", Some(1)), "Puerta-1-Salida");
        assert_eq!(Language::Zh.reader("门-1", Some(0)), "门-1-入");
        assert_eq!(Language::En.reader("Door-1", None), "Door-1-In");
    }

    /// Every code with an English name has a name in every language, and no two codes share
    /// a name in one language (a client telling events apart by name must be able to).
    #[test]
    fn every_language_names_every_code_once() {
        for language in LANGUAGES {
            let mut seen = std::collections::BTreeMap::new();
            for code in (0..=300).filter(|&c| labels::access_event(c).is_some()) {
                let name = language.event(Some(code));
                let unnamed = [format!("Event {code}"), format!("Evento {code}"), format!("事件 {code}")];
                assert!(!unnamed.contains(&name), "{language:?} {code}");
                assert_eq!(seen.insert(name.clone(), code), None, "{language:?}: {name} twice");
            }
            let mut modes = std::collections::BTreeSet::new();
            for code in 0..=29 {
                assert!(modes.insert(language.verify_mode(&code.to_string())), "{language:?}: verify mode {code}");
            }
            assert!(!modes.contains(language.verify_mode("99")), "{language:?}: 'other' is no mode's name");
        }
    }

    #[test]
    fn the_language_is_read_from_its_code() {
        let read = |text: &str| serde_json::from_value::<Language>(serde_json::Value::String(text.into()));
        assert_eq!(read("es").unwrap(), Language::Es);
        assert_eq!(read("zh").unwrap(), Language::Zh);
        assert!(read("fr").is_err());
    }
}

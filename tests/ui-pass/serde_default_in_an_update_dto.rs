//! A field's own `#[serde(default ..)]` and `skip_serializing_if` are kept where the DTO
//! uses them (the model, create and read DTOs) and left out of an update DTO, which wraps the
//! field in `Option` with its own: a missing key is "not set", never the field's default.
use polystore::prelude::*;

#[derive(Model, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[model(dto(SettingsPatch, update), dto(NewSettings, create), dto(SettingsView))]
pub struct Settings {
    #[model(primary_key)]
    pub id: i64,
    #[serde(default)]
    pub theme: String,
    #[serde(default = "default_size", skip_serializing_if = "is_zero")]
    pub size: i32,
    #[serde(default, rename = "nick")]
    pub nickname: Option<String>,
}

fn default_size() -> i32 {
    12
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn main() {
    // The model and the create DTO keep the defaults.
    let s: Settings = serde_json::from_str(r#"{"id":1}"#).unwrap();
    assert_eq!(s, Settings { id: 1, theme: String::new(), size: 12, nickname: None });
    let n: NewSettings = serde_json::from_str(r#"{"id":2}"#).unwrap();
    assert_eq!((n.theme.as_str(), n.size), ("", 12));
    let v = SettingsView::from(Settings { size: 0, ..s.clone() });
    assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"id":1,"theme":"","nick":null}"#);

    // The update DTO: an absent key is not set, whatever the field's default; other serde
    // attributes (`rename`) still apply.
    let empty: SettingsPatch = serde_json::from_str("{}").unwrap();
    assert!(empty.is_empty());
    let p: SettingsPatch = serde_json::from_str(r#"{"size":0,"nick":null}"#).unwrap();
    assert_eq!(p.theme, None);
    assert_eq!(p.size, Some(0));
    assert_eq!(p.nickname, Some(None));
    assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"size":0,"nick":null}"#);
    let mut row = s;
    p.apply(&mut row);
    assert_eq!((row.size, row.nickname), (0, None));
}

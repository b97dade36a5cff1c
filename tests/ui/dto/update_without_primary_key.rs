use polystore::prelude::*;

#[derive(Model)]
#[model(dto(SettingPatch, update))]
pub struct Setting {
    pub name: String,
    pub value: String,
}

fn main() {}

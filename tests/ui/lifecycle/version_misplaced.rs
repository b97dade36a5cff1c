use polystore::prelude::*;

#[derive(Model)]
pub struct Doc {
    #[model(primary_key, version)]
    pub id: i64,
    #[model(version)]
    pub version: i64,
    #[model(version)]
    pub revision: i64,
}

#[derive(Model)]
#[model(dto(DocPatch, update, exclude(version)))]
pub struct Page {
    #[model(primary_key)]
    pub id: i64,
    pub title: String,
    #[model(version)]
    pub version: i32,
}

fn main() {}

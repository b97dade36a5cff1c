use polystore::prelude::*;

#[derive(Enum)]
#[model(rename_all = "snake")]
pub enum Status {
    Active,
    Banned { reason: String },
}

fn main() {}

use polystore::prelude::*;

#[derive(Model)]
pub enum Status {
    Active,
    Banned,
}

fn main() {}

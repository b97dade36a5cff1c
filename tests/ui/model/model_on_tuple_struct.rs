use polystore::prelude::*;

#[derive(Model)]
pub struct Point(i64, i64);

fn main() {}

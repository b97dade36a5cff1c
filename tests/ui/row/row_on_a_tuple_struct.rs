use polystore::Row;

#[derive(Row)]
pub struct Report(String, i64);

fn main() {}

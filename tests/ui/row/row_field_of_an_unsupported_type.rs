use polystore::Row;

pub struct Money {
    pub cents: i64,
}

#[derive(Row)]
pub struct Report {
    pub name: String,
    pub total: Money,
}

fn main() {}

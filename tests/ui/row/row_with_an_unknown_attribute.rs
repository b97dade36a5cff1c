use polystore::Row;

#[derive(Row)]
pub struct Report {
    #[row(name = "customer")]
    pub name: String,
    pub total: i64,
}

fn main() {}

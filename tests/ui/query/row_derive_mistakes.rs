use polystore::Row;

// Rows by position are tuples, not tuple structs.
#[derive(Row)]
pub struct ByPosition(String, i64);

#[derive(Row)]
pub struct Renamed {
    #[row(rename = "n")]
    pub count: i64,
}

fn main() {}

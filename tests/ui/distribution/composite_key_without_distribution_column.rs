use polystore::prelude::*;

#[derive(Model)]
#[model(distributed_by = tenant_id, primary_key(id, line))]
pub struct OrderLine {
    pub id: i64,
    pub line: i32,
    pub tenant_id: i64,
}

fn main() {}

use polystore::prelude::*;

pub struct Color(u8, u8, u8);

#[derive(Model)]
pub struct Shape {
    #[model(primary_key)]
    pub id: i64,
    pub color: Color,
}

fn main() {}

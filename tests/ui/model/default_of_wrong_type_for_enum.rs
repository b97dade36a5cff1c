use polystore::prelude::*;

#[derive(Enum, Debug, Clone)]
pub enum Plan {
    Free,
    Pro,
}

// The macro cannot see what `Plan` is stored as; the compiler checks the default against it.
#[derive(Model)]
pub struct Account {
    #[model(primary_key)]
    pub id: i64,
    #[model(default = 3)]
    pub plan: Plan,
    #[model(default = "free")]
    pub fallback: Plan,
    #[model(default = "1.50")]
    pub balance: rust_decimal::Decimal,
}

fn main() {}

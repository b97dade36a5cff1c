use polystore::prelude::*;

// A dot in a table name is not a schema: the schema is its own attribute.
#[derive(Model)]
#[model(table = "billing.invoices")]
pub struct Invoice {
    #[model(primary_key)]
    pub id: i64,
}

#[derive(Model)]
#[model(schema = "")]
pub struct Receipt {
    #[model(primary_key)]
    pub id: i64,
}

fn main() {}

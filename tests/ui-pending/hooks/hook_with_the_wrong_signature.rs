use polystore::prelude::*;

#[derive(Model, Debug, Clone)]
#[model(hooks)]
pub struct Account {
    #[model(primary_key)]
    pub id: i64,
    pub email: String,
}

impl Hooks for Account {
    // A before-hook gets the row and the hook context, and returns polystore::Result<()>.
    async fn before_insert(&mut self) -> Result<()> {
        self.email = self.email.to_lowercase();
        Ok(())
    }
}

fn main() {}

use polystore::prelude::*;

#[derive(Model, Clone)]
#[model(dto(UserCard, only(id, name)))]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
}

#[derive(Model, Clone)]
#[model(dto(PostCard, only(id, title)))]
pub struct Post {
    #[model(primary_key)]
    pub id: i64,
    pub title: String,
}

async fn load(db: &Db) -> polystore::Result<()> {
    // The tuple's types come from the handles: a `String` field does not read into an `i32`.
    let _rows: Vec<(i64, i32)> = User::query().select((User::ID, User::NAME)).all(db).await?;
    // A DTO of another model is not a projection of this one.
    let _cards = User::query().project::<PostCard>();
    Ok(())
}

fn main() {
    let _ = load;
    let _ = UserCard { id: 1, name: String::new() };
}

//! Model literals stay short (issue #13, C.18): `Rel<T>` is `Default` (not loaded), so a model
//! that derives `Default` takes `..Default::default()`; relation fields need no serde
//! attributes (a relation that was not loaded is written as `null` and read back as not
//! loaded); a create DTO becomes the model with `into_model()`, relations not loaded; a read
//! DTO has no relation fields at all.
use polystore::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Model, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Writer {
    #[model(primary_key, generated)]
    pub id: i64,
    pub name: String,
    #[model(has_many(foreign_key = writer_id))]
    pub books: Rel<Vec<Book>>,
}

#[derive(Model, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[model(dto(NewBook, create), dto(BookView, exclude(writer_id)))]
pub struct Book {
    #[model(primary_key, generated)]
    pub id: i64,
    pub writer_id: i64,
    pub title: String,
    #[model(belongs_to)]
    pub writer: Rel<Writer>,
}

fn main() {
    let book = Book { writer_id: 7, title: "Notes".into(), ..Default::default() };
    assert!(book.writer.is_not_loaded());
    assert_eq!(serde_json::to_value(&book).unwrap()["writer"], serde_json::Value::Null);
    let back: Book = serde_json::from_str(&serde_json::to_string(&book).unwrap()).unwrap();
    assert_eq!(back, book);

    let loaded = Book { writer: Rel::loaded(Writer { id: 7, name: "Ada".into(), ..Default::default() }), ..book };
    let json = serde_json::to_value(&loaded).unwrap();
    assert_eq!(json["writer"]["name"], "Ada");
    assert_eq!(json["writer"]["books"], serde_json::Value::Null);
    if let Rel::Loaded(writer) = &loaded.writer {
        assert_eq!(writer.name, "Ada"); // `RelBox` dereferences to the model
    }

    let made = NewBook { writer_id: 7, title: "Notes".into() }.into_model();
    assert_eq!((made.title.as_str(), made.writer.is_loaded()), ("Notes", false));
    let view = serde_json::to_value(BookView::from(loaded.clone())).unwrap();
    assert_eq!(view, serde_json::json!({"id": 0, "title": "Notes"}), "read DTOs carry no relations");

    // A model holding a loaded relation crosses threads and tasks.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let name = runtime.block_on(async move {
        tokio::spawn(async move { loaded.writer.into_loaded().map(|w| w.name) }).await.unwrap()
    });
    assert_eq!(name.as_deref(), Some("Ada"));
}

//! A chain of 100 models linked both ways (each `belongs_to` the one before it and `has_many`
//! of the one after it) compiles without `#![recursion_limit]` (issue #13, C.14), and models
//! holding loaded relations, and the queries that load them, still cross `tokio::spawn`.
use polystore::prelude::*;

/// A model in the middle of the chain: `$name` belongs to `$prev` and has many `$next`.
macro_rules! link {
    ($name:ident, $prev:ident, $next:ident) => {
        #[derive(Model, Debug, Clone, Default)]
        pub struct $name {
            #[model(primary_key)]
            pub id: i64,
            pub prev_id: i64,
            #[model(belongs_to(key = prev_id))]
            pub prev: Rel<$prev>,
            #[model(has_many(foreign_key = prev_id))]
            pub next: Rel<Vec<$next>>,
        }
    };
}

#[derive(Model, Debug, Clone, Default)]
pub struct E0 {
    #[model(primary_key)]
    pub id: i64,
    #[model(has_many(foreign_key = prev_id))]
    pub next: Rel<Vec<E1>>,
}

link!(E1, E0, E2); link!(E2, E1, E3); link!(E3, E2, E4); link!(E4, E3, E5);
link!(E5, E4, E6); link!(E6, E5, E7); link!(E7, E6, E8); link!(E8, E7, E9);
link!(E9, E8, E10); link!(E10, E9, E11); link!(E11, E10, E12); link!(E12, E11, E13);
link!(E13, E12, E14); link!(E14, E13, E15); link!(E15, E14, E16); link!(E16, E15, E17);
link!(E17, E16, E18); link!(E18, E17, E19); link!(E19, E18, E20); link!(E20, E19, E21);
link!(E21, E20, E22); link!(E22, E21, E23); link!(E23, E22, E24); link!(E24, E23, E25);
link!(E25, E24, E26); link!(E26, E25, E27); link!(E27, E26, E28); link!(E28, E27, E29);
link!(E29, E28, E30); link!(E30, E29, E31); link!(E31, E30, E32); link!(E32, E31, E33);
link!(E33, E32, E34); link!(E34, E33, E35); link!(E35, E34, E36); link!(E36, E35, E37);
link!(E37, E36, E38); link!(E38, E37, E39); link!(E39, E38, E40); link!(E40, E39, E41);
link!(E41, E40, E42); link!(E42, E41, E43); link!(E43, E42, E44); link!(E44, E43, E45);
link!(E45, E44, E46); link!(E46, E45, E47); link!(E47, E46, E48); link!(E48, E47, E49);
link!(E49, E48, E50); link!(E50, E49, E51); link!(E51, E50, E52); link!(E52, E51, E53);
link!(E53, E52, E54); link!(E54, E53, E55); link!(E55, E54, E56); link!(E56, E55, E57);
link!(E57, E56, E58); link!(E58, E57, E59); link!(E59, E58, E60); link!(E60, E59, E61);
link!(E61, E60, E62); link!(E62, E61, E63); link!(E63, E62, E64); link!(E64, E63, E65);
link!(E65, E64, E66); link!(E66, E65, E67); link!(E67, E66, E68); link!(E68, E67, E69);
link!(E69, E68, E70); link!(E70, E69, E71); link!(E71, E70, E72); link!(E72, E71, E73);
link!(E73, E72, E74); link!(E74, E73, E75); link!(E75, E74, E76); link!(E76, E75, E77);
link!(E77, E76, E78); link!(E78, E77, E79); link!(E79, E78, E80); link!(E80, E79, E81);
link!(E81, E80, E82); link!(E82, E81, E83); link!(E83, E82, E84); link!(E84, E83, E85);
link!(E85, E84, E86); link!(E86, E85, E87); link!(E87, E86, E88); link!(E88, E87, E89);
link!(E89, E88, E90); link!(E90, E89, E91); link!(E91, E90, E92); link!(E92, E91, E93);
link!(E93, E92, E94); link!(E94, E93, E95); link!(E95, E94, E96); link!(E96, E95, E97);
link!(E97, E96, E98); link!(E98, E97, E99);

#[derive(Model, Debug, Clone, Default)]
pub struct E99 {
    #[model(primary_key)]
    pub id: i64,
    pub prev_id: i64,
    #[model(belongs_to(key = prev_id))]
    pub prev: Rel<E98>,
}

fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}

/// Loads both relations of the middle of the chain; the future must be `Send` for `spawn`.
async fn load_middle(db: Db) -> polystore::Result<Vec<E50>> {
    E50::query().with(E50::PREV).with(E50::NEXT).all(&db).await
}

/// Only type-checked: `tokio::spawn` requires a `Send + 'static` future.
#[allow(dead_code)]
fn spawn_load(db: Db) -> tokio::task::JoinHandle<polystore::Result<Vec<E50>>> {
    tokio::spawn(load_middle(db))
}

fn main() {
    assert_eq!(E99::SCHEMA.relations[0].name, "prev");
    // A value loaded three levels deep, both ways, cloned, sent to a thread and dropped.
    let tail = E99 { id: 99, prev_id: 98, ..Default::default() };
    let e98 = E98 { id: 98, prev_id: 97, next: Rel::loaded(vec![tail]), ..Default::default() };
    let e97 = E97 { id: 97, prev_id: 96, next: Rel::loaded(vec![e98]), ..Default::default() };
    let mut e0 = E0 { id: 0, ..Default::default() };
    e0.next = Rel::loaded(vec![E1 { id: 1, prev: Rel::loaded(E0::default()), ..Default::default() }]);
    assert_send_sync(&e97);
    assert_send_sync(&e0);
    let copy = e97.clone();
    let depth = std::thread::spawn(move || {
        let e98 = &copy.next.get().expect("loaded")[0];
        e98.next.get().expect("loaded")[0].id
    })
    .join()
    .unwrap();
    assert_eq!(depth, 99);
    assert_eq!(e0.next.get().map(|rows| rows[0].prev.is_loaded()), Some(true));
    drop((e97, e0));
}

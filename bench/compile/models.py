"""The 20 models of the compile-time benchmark, and the source of each app generated from them.

One description of the schema (MODELS) is turned into four crates that hold the same models and
the same queries: polystore (`#[derive(Model)]`), SeaORM (entities as sea-orm-cli writes them,
compact format), Diesel (`table!` schema plus Queryable/Selectable/Insertable/Associations) and a
serde-only baseline (the same structs with Serialize/Deserialize, no database at all).

Stdlib only; used by `run`.
"""

# Field kinds: i64, i32, str, bool, ts (timestamp with time zone). A trailing "?" makes the
# column nullable. "fk:Model" is an i64 foreign key to Model's id ("fk?:Model" nullable).
# Flags: unique, index, email, len(a-b), range(a-b), created, updated.
MODELS = [
    ("Org", "orgs", [("name", "str", "len(1-120)"), ("slug", "str", "unique"), ("plan", "str", ""),
                     ("created_at", "ts", "created")]),
    ("User", "users", [("org_id", "fk:Org", "index"), ("email", "str", "unique email"),
                       ("name", "str", "len(1-80)"), ("is_admin", "bool", ""),
                       ("last_login_at", "ts?", ""), ("created_at", "ts", "created")]),
    ("Profile", "profiles", [("user_id", "fk:User", "unique"), ("bio", "str", "len(0-2000)"),
                             ("avatar_url", "str?", ""), ("timezone", "str", "")]),
    ("Team", "teams", [("org_id", "fk:Org", "index"), ("name", "str", "len(1-80)"),
                       ("created_at", "ts", "created")]),
    ("TeamMember", "team_members", [("team_id", "fk:Team", "pk"), ("user_id", "fk:User", "pk"),
                                    ("role", "str", "")]),
    ("Project", "projects", [("org_id", "fk:Org", "index"), ("name", "str", "len(1-120)"),
                             ("description", "str?", ""), ("archived", "bool", ""),
                             ("created_at", "ts", "created"), ("updated_at", "ts", "updated")]),
    ("Milestone", "milestones", [("project_id", "fk:Project", "index"), ("title", "str", "len(1-120)"),
                                 ("due_at", "ts?", ""), ("closed", "bool", "")]),
    ("Task", "tasks", [("project_id", "fk:Project", "index"), ("milestone_id", "fk?:Milestone", ""),
                       ("assignee_id", "fk?:User", "index"), ("title", "str", "len(1-200)"),
                       ("body", "str", ""), ("status", "str", "index"), ("priority", "i32", "range(0-4)"),
                       ("estimate_minutes", "i32?", ""), ("due_at", "ts?", ""),
                       ("created_at", "ts", "created"), ("updated_at", "ts", "updated")]),
    ("Comment", "comments", [("task_id", "fk:Task", "index"), ("author_id", "fk:User", ""),
                             ("body", "str", "len(1-10000)"), ("edited", "bool", ""),
                             ("created_at", "ts", "created")]),
    ("Tag", "tags", [("org_id", "fk:Org", "index"), ("name", "str", "len(1-40)"), ("color", "str", "")]),
    ("TaskTag", "task_tags", [("task_id", "fk:Task", "pk"), ("tag_id", "fk:Tag", "pk")]),
    ("Attachment", "attachments", [("task_id", "fk:Task", "index"), ("file_name", "str", "len(1-255)"),
                                   ("content_type", "str", ""), ("size_bytes", "i64", ""),
                                   ("created_at", "ts", "created")]),
    ("TimeEntry", "time_entries", [("task_id", "fk:Task", "index"), ("user_id", "fk:User", "index"),
                                   ("minutes", "i32", "range(1-1440)"), ("spent_at", "ts", ""),
                                   ("note", "str?", "")]),
    ("Customer", "customers", [("org_id", "fk:Org", "index"), ("name", "str", "len(1-120)"),
                               ("email", "str", "email"), ("country", "str", ""),
                               ("created_at", "ts", "created")]),
    ("Invoice", "invoices", [("customer_id", "fk:Customer", "index"), ("number", "str", "unique"),
                             ("status", "str", "index"), ("issued_at", "ts", ""), ("due_at", "ts", ""),
                             ("total_cents", "i64", ""), ("currency", "str", "")]),
    ("InvoiceLine", "invoice_lines", [("invoice_id", "fk:Invoice", "index"),
                                      ("product_id", "fk?:Product", ""), ("description", "str", ""),
                                      ("quantity", "i32", "range(1-100000)"), ("unit_cents", "i64", "")]),
    ("Payment", "payments", [("invoice_id", "fk:Invoice", "index"), ("amount_cents", "i64", ""),
                             ("method", "str", ""), ("paid_at", "ts", "")]),
    ("Product", "products", [("org_id", "fk:Org", "index"), ("sku", "str", "unique"),
                             ("name", "str", "len(1-200)"), ("price_cents", "i64", ""),
                             ("active", "bool", "")]),
    ("AuditLog", "audit_logs", [("org_id", "fk:Org", "index"), ("user_id", "fk?:User", ""),
                                ("action", "str", ""), ("entity", "str", ""), ("entity_id", "i64", ""),
                                ("at", "ts", "created")]),
    ("Notification", "notifications", [("user_id", "fk:User", "index"), ("kind", "str", ""),
                                       ("payload", "str", ""), ("read", "bool", ""),
                                       ("created_at", "ts", "created")]),
]

# Composite indexes (model, columns).
COMPOSITE = {"Project": ["org_id", "archived"], "Task": ["project_id", "status"],
             "Notification": ["user_id", "read"]}
# Many-to-many: (model, field, target, join model, left key, right key).
M2M = [("Task", "tags", "Tag", "TaskTag", "task_id", "tag_id"),
       ("Tag", "tasks", "Task", "TaskTag", "tag_id", "task_id"),
       ("Team", "members", "User", "TeamMember", "team_id", "user_id"),
       ("User", "teams", "Team", "TeamMember", "user_id", "team_id")]
# The model the one-field change edits.
CHANGED = "Task"

BY_NAME = {m[0]: m for m in MODELS}


def snake(name):
    out = ""
    for i, c in enumerate(name):
        if c.isupper() and i:
            out += "_"
        out += c.lower()
    return out


def camel(name):
    return "".join(p.capitalize() for p in name.split("_"))


def fields_of(model, extra):
    name, table, fields = BY_NAME[model]
    fields = list(fields)
    if extra and model == CHANGED:
        fields.append((extra, "str?", ""))
    return fields


def is_join(model):
    return any("pk" in f[2].split() for f in BY_NAME[model][2])


def fks(model):
    """(field, target, nullable) of each foreign key of the model."""
    out = []
    for f, kind, _ in BY_NAME[model][2]:
        if kind.startswith("fk"):
            out.append((f, kind.split(":")[1], kind.startswith("fk?")))
    return out


def rel_name(fk_field):
    return fk_field[:-3] if fk_field.endswith("_id") else fk_field


def children(model):
    """(child, fk field, unique) of every foreign key pointing at model."""
    out = []
    for child, _, fields in MODELS:
        for f, kind, flags in fields:
            if kind.startswith("fk") and kind.split(":")[1] == model:
                out.append((child, f, "unique" in flags.split()))
    return out


def plural(table_like):
    return table_like if table_like.endswith("s") else table_like + "s"


def has_field_name(model, child, fk):
    """The name of the has_many / has_one field on `model` for `child`'s key `fk`."""
    base = BY_NAME[child][1]
    if fk != snake(model) + "_id":
        base = rel_name(fk) + "_" + base
    return base


def rust_ty(kind, ts="DateTime<Utc>"):
    nullable = kind.endswith("?") or kind.startswith("fk?")
    k = kind.rstrip("?")
    base = {"i64": "i64", "i32": "i32", "str": "String", "bool": "bool", "ts": ts}.get(k, "i64")
    return f"Option<{base}>" if nullable else base


def flags(f):
    return f[2].split()


def range_of(flag):
    a, b = flag[flag.index("(") + 1:-1].split("-")
    return a, b


# ---------------------------------------------------------------------------------------------
# serde baseline

def serde_model(model, extra=None):
    name, table, _ = BY_NAME[model]
    lines = ["use chrono::{DateTime, Utc};", "use serde::{Deserialize, Serialize};", "",
             f"/// A row of `{table}`.",
             "#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]",
             f"pub struct {name} {{"]
    if not is_join(model):
        lines.append("    pub id: i64,")
    for f, kind, _ in fields_of(model, extra):
        lines.append(f"    pub {f}: {rust_ty(kind)},")
    lines.append("}")
    return "\n".join(lines) + "\n"


SERDE_MAIN = """//! The queries; the models are in their own modules, one file per model.
#![allow(dead_code, unused_imports)]

mod models;
use models::*;

fn main() {
    if std::env::args().count() > 99 {
        let task = Task { project_id: 1, title: "Write the report".into(), status: "open".into(), ..Default::default() };
        let json = serde_json::to_string(&task).unwrap();
        let back: Task = serde_json::from_str(&json).unwrap();
        let users: Vec<User> = serde_json::from_str("[]").unwrap();
        let invoices: Vec<(Invoice, Vec<InvoiceLine>)> = serde_json::from_str("[]").unwrap();
        let orgs: Vec<Org> = serde_json::from_str("[]").unwrap();
        println!("{back:?} {users:?} {invoices:?} {orgs:?}");
    }
    println!("serde baseline: 20 models");
}
"""


# ---------------------------------------------------------------------------------------------
# polystore

def polystore_model(model, extra=None):
    name, table, _ = BY_NAME[model]
    fields = fields_of(model, extra)
    validated = any(fl in ("email",) or fl.startswith(("len", "range")) for f in fields for fl in flags(f))
    lines = ["use super::*;", "use chrono::{DateTime, Utc};", "use polystore::prelude::*;"]
    if validated:
        lines.append("use validator::Validate;")
    lines += ["", f"/// A row of `{table}`."]
    derives = ["Model"] + (["Validate"] if validated else []) + ["Debug", "Clone", "Default"]
    lines.append(f"#[derive({', '.join(derives)})]")
    if is_join(model):
        pk = [f[0] for f in fields if "pk" in flags(f)]
        lines.append(f'#[model(table = "{table}", primary_key({", ".join(pk)}))]')
    else:
        lines.append(f'#[model(table = "{table}")]')
    if model in COMPOSITE:
        lines.append(f"#[model(index({', '.join(COMPOSITE[model])}))]")
    lines.append(f"pub struct {name} {{")
    if not is_join(model):
        lines += ["    #[model(primary_key, generated)]", "    pub id: i64,"]
    for f in fields:
        fname, kind, _ = f
        attrs = []
        for fl in flags(f):
            if fl in ("unique", "index"):
                attrs.append(fl)
            elif fl == "created":
                attrs.append("created_at")
            elif fl == "updated":
                attrs.append("updated_at")
            elif fl == "email":
                lines.append("    #[validate(email)]")
            elif fl.startswith("len"):
                a, b = range_of(fl)
                lines.append(f"    #[validate(length(min = {a}, max = {b}))]")
            elif fl.startswith("range"):
                a, b = range_of(fl)
                lines.append(f"    #[validate(range(min = {a}, max = {b}))]")
        if attrs:
            lines.append(f"    #[model({', '.join(attrs)})]")
        lines.append(f"    pub {fname}: {rust_ty(kind)},")
    # relations: belongs_to for every key, has_many / has_one for every key pointing here, M:N
    for fk, target, nullable in fks(model):
        ty = f"Rel<Option<{target}>>" if nullable else f"Rel<{target}>"
        action = "set_null" if nullable else "cascade"
        lines.append(f'    #[model(belongs_to(key = {fk}, on_delete = "{action}"))]')
        lines.append(f"    pub {rel_name(fk)}: {ty},")
    for child, fk, unique in children(model):
        if unique:
            lines.append(f"    #[model(has_one(foreign_key = {fk}))]")
            lines.append(f"    pub {snake(child)}: Rel<Option<{child}>>,")
        else:
            lines.append(f"    #[model(has_many(foreign_key = {fk}))]")
            lines.append(f"    pub {has_field_name(model, child, fk)}: Rel<Vec<{child}>>,")
    for m, field, target, join, left, right in M2M:
        if m == model:
            lines.append(f"    #[model(many_to_many(through = {join}, left = {left}, right = {right}))]")
            lines.append(f"    pub {field}: Rel<Vec<{target}>>,")
    lines.append("}")
    if model == CHANGED:
        lines += ["", "/// A new open task of a project.",
                  "pub fn new_task(project_id: i64, title: &str) -> Task {",
                  "    Task { project_id, title: title.into(), status: \"open\".into(), priority: 2, ..Default::default() }",
                  "}"]
    return "\n".join(lines) + "\n"


POLYSTORE_MAIN = """//! The queries; the models are in their own modules, one file per model.
#![allow(dead_code, unused_imports)]

mod models;
use models::*;
use polystore::prelude::*;

async fn queries(db: &Db) -> polystore::Result<()> {
    // find by id
    let task = Task::find(db, 1).await?;
    // filtered, ordered list
    let open = Task::query()
        .filter(Task::PROJECT_ID.eq(task.project_id).and(Task::STATUS.eq("open")).and(Task::PRIORITY.ge(2)))
        .order_by(Task::CREATED_AT.desc())
        .limit(20)
        .all(db)
        .await?;
    // relation loads: 1:N, nested 1:N, N:M, 1:1
    let projects = Project::query().filter(Project::ORG_ID.eq(1)).with(Project::TASKS.with(Task::COMMENTS)).all(db).await?;
    let tagged = Task::query().with(Task::TAGS).with(Task::ASSIGNEE).limit(10).all(db).await?;
    let users = User::query().with(User::PROFILE).with(User::TEAMS).all(db).await?;
    let invoices = Invoice::query().filter(Invoice::STATUS.eq("open")).with(Invoice::INVOICE_LINES).with(Invoice::CUSTOMER).all(db).await?;
    // insert (validated), update
    let new = models::task::new_task(task.project_id, "Write the report").insert(db).await?;
    let mut done = new.clone();
    done.status = "done".into();
    let done = done.update(db).await?;
    let user = User { org_id: 1, email: "ada@example.com".into(), name: "Ada".into(), ..Default::default() }.insert(db).await?;
    println!("{} {} {} {} {} {} {} {}", open.len(), projects.len(), tagged.len(), users.len(), invoices.len(), new.id, done.status, user.id);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().count() > 99 {
        let db = Db::connect(&std::env::var("DATABASE_URL")?).await?;
        queries(&db).await?;
    }
    println!("polystore app: 20 models");
    Ok(())
}
"""


# ---------------------------------------------------------------------------------------------
# SeaORM (compact entity format, as sea-orm-cli writes it)

def sea_model(model, extra=None):
    name, table, _ = BY_NAME[model]
    fields = fields_of(model, extra)
    lines = ["//! `SeaORM` Entity, written the way sea-orm-cli generates it", "",
             "use sea_orm::entity::prelude::*;", "",
             "#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]",
             f'#[sea_orm(table_name = "{table}")]', "pub struct Model {"]
    if not is_join(model):
        lines += ["    #[sea_orm(primary_key)]", "    pub id: i64,"]
    for f in fields:
        fname, kind, _ = f
        attrs = []
        for fl in flags(f):
            if fl == "pk":
                attrs.append("primary_key, auto_increment = false")
            elif fl == "unique":
                attrs.append("unique")
            elif fl == "index":
                attrs.append("indexed")
            elif fl in ("created", "updated"):
                attrs.append('default_expr = "Expr::current_timestamp()"')
        if rust_ty(kind) in ("String", "Option<String>"):
            attrs.append('column_type = "Text"')
        if attrs:
            lines.append(f"    #[sea_orm({', '.join(attrs)})]")
        lines.append(f"    pub {fname}: {rust_ty(kind, 'DateTimeWithTimeZone')},")
    lines += ["}", "", "#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]", "pub enum Relation {"]
    related = []
    for fk, target, nullable in fks(model):
        action = "SetNull" if nullable else "Cascade"
        t = snake(target)
        lines += ["    #[sea_orm(",
                  f'        belongs_to = "super::{t}::Entity",',
                  f'        from = "Column::{camel(fk)}",',
                  f'        to = "super::{t}::Column::Id",',
                  '        on_update = "NoAction",',
                  f'        on_delete = "{action}"',
                  "    )]",
                  f"    {target},"]
        related.append((target, target))
    for child, fk, unique in children(model):
        kw = "has_one" if unique else "has_many"
        lines.append(f'    #[sea_orm({kw} = "super::{snake(child)}::Entity")]')
        lines.append(f"    {child},")
        related.append((child, child))
    lines.append("}")
    for target, variant in related:
        lines += ["", f"impl Related<super::{snake(target)}::Entity> for Entity {{",
                  "    fn to() -> RelationDef {", f"        Relation::{variant}.def()", "    }", "}"]
    for m, field, target, join, left, right in M2M:
        if m == model:
            j = snake(join)
            lines += ["", f"impl Related<super::{snake(target)}::Entity> for Entity {{",
                      "    fn to() -> RelationDef {", f"        super::{j}::Relation::{target}.def()", "    }",
                      "    fn via() -> Option<RelationDef> {",
                      f"        Some(super::{j}::Relation::{name}.def().rev())", "    }", "}"]
    checks = []
    for f in fields:
        for fl in flags(f):
            if fl == "email":
                checks.append(f'if let sea_orm::ActiveValue::Set(v) = &self.{f[0]} {{ if !v.contains(\'@\') {{ return Err(DbErr::Custom("{f[0]}: not an e-mail address".into())); }} }}')
            elif fl.startswith("len"):
                a, b = range_of(fl)
                low = f"v.chars().count() < {a} || " if a != "0" else ""
                checks.append(f'if let sea_orm::ActiveValue::Set(v) = &self.{f[0]} {{ if {low}v.chars().count() > {b} {{ return Err(DbErr::Custom("{f[0]}: length".into())); }} }}')
            elif fl.startswith("range"):
                a, b = range_of(fl)
                checks.append(f'if let sea_orm::ActiveValue::Set(v) = &self.{f[0]} {{ if !({a}..={b}).contains(v) {{ return Err(DbErr::Custom("{f[0]}: range".into())); }} }}')
    if checks:
        lines += ["", "#[async_trait::async_trait]", "impl ActiveModelBehavior for ActiveModel {",
                  "    async fn before_save<C>(self, _db: &C, _insert: bool) -> Result<Self, DbErr>",
                  "    where", "        C: ConnectionTrait,", "    {"]
        lines += ["        " + c for c in checks]
        lines += ["        Ok(self)", "    }", "}"]
    else:
        lines += ["", "impl ActiveModelBehavior for ActiveModel {}"]
    return "\n".join(lines) + "\n"


def sea_mod():
    out = ["//! `SeaORM` entities", ""]
    for name, _, _ in MODELS:
        out.append(f"pub mod {snake(name)};")
    return "\n".join(out) + "\n"


SEA_MAIN = """//! The queries; the models are in their own modules, one file per model.
#![allow(dead_code, unused_imports)]

mod entities;
use entities::*;
use sea_orm::{ActiveModelTrait, ColumnTrait, Database, DatabaseConnection, DbErr, EntityTrait, LoaderTrait, QueryFilter, QueryOrder, QuerySelect, Set};

async fn queries(db: &DatabaseConnection) -> Result<(), DbErr> {
    // find by id
    let task = task::Entity::find_by_id(1i64).one(db).await?.ok_or(DbErr::RecordNotFound("task".into()))?;
    // filtered, ordered list
    let open = task::Entity::find()
        .filter(task::Column::ProjectId.eq(task.project_id))
        .filter(task::Column::Status.eq("open"))
        .filter(task::Column::Priority.gte(2))
        .order_by_desc(task::Column::CreatedAt)
        .limit(20)
        .all(db)
        .await?;
    // relation loads: 1:N, nested 1:N, N:M, 1:1
    let projects = project::Entity::find().filter(project::Column::OrgId.eq(1i64)).all(db).await?;
    let project_tasks = projects.load_many(task::Entity, db).await?;
    let flat: Vec<task::Model> = project_tasks.iter().flatten().cloned().collect();
    let comments = flat.load_many(comment::Entity, db).await?;
    let tagged = task::Entity::find().limit(10).all(db).await?;
    let tags = tagged.load_many_to_many(tag::Entity, task_tag::Entity, db).await?;
    let assignees = tagged.load_one(user::Entity, db).await?;
    let users = user::Entity::find().find_also_related(profile::Entity).all(db).await?;
    let plain_users: Vec<user::Model> = users.iter().map(|(u, _)| u.clone()).collect();
    let teams = plain_users.load_many_to_many(team::Entity, team_member::Entity, db).await?;
    let invoices = invoice::Entity::find().filter(invoice::Column::Status.eq("open")).find_with_related(invoice_line::Entity).all(db).await?;
    let plain_invoices: Vec<invoice::Model> = invoices.iter().map(|(i, _)| i.clone()).collect();
    let customers = plain_invoices.load_one(customer::Entity, db).await?;
    // insert (validated in before_save), update
    let new = task::ActiveModel {
        project_id: Set(task.project_id),
        title: Set("Write the report".into()),
        body: Set(String::new()),
        status: Set("open".into()),
        priority: Set(2),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let mut done: task::ActiveModel = new.clone().into();
    done.status = Set("done".into());
    let done = done.update(db).await?;
    let user = user::ActiveModel {
        org_id: Set(1),
        email: Set("ada@example.com".into()),
        name: Set("Ada".into()),
        is_admin: Set(false),
        ..Default::default()
    }
    .insert(db)
    .await?;
    println!(
        "{} {} {} {} {} {} {} {} {} {} {} {}",
        open.len(), projects.len(), comments.len(), tags.len(), assignees.len(), users.len(), teams.len(),
        invoices.len(), customers.len(), new.id, done.status, user.id
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().count() > 99 {
        let db = Database::connect(std::env::var("DATABASE_URL")?).await?;
        queries(&db).await?;
    }
    println!("SeaORM app: 20 models");
    Ok(())
}
"""


# ---------------------------------------------------------------------------------------------
# Diesel

DIESEL_SQL = {"i64": "Int8", "i32": "Int4", "str": "Text", "bool": "Bool", "ts": "Timestamptz"}


def diesel_schema(extra=None):
    out = ["// @generated automatically by Diesel CLI.", ""]
    for name, table, _ in MODELS:
        fields = fields_of(name, extra)
        pk = [f[0] for f in fields if "pk" in flags(f)] or ["id"]
        out.append("diesel::table! {")
        out.append(f"    {table} ({', '.join(pk)}) {{")
        if not is_join(name):
            out.append("        id -> Int8,")
        for fname, kind, _ in fields:
            nullable = kind.endswith("?") or kind.startswith("fk?")
            k = kind.rstrip("?")
            sql = DIESEL_SQL.get(k, "Int8")
            out.append(f"        {fname} -> {'Nullable<' + sql + '>' if nullable else sql},")
        out += ["    }", "}", ""]
    for name, table, _ in MODELS:
        for fk, target, _ in fks(name):
            out.append(f"diesel::joinable!({table} -> {BY_NAME[target][1]} ({fk}));")
    out += ["", "diesel::allow_tables_to_appear_in_same_query!("]
    out += [f"    {t}," for _, t, _ in MODELS]
    out.append(");")
    return "\n".join(out) + "\n"


def diesel_model(model, extra=None):
    name, table, _ = BY_NAME[model]
    fields = fields_of(model, extra)
    lines = ["use super::*;", "use crate::schema::" + table + ";", "use chrono::{DateTime, Utc};",
             "use diesel::prelude::*;", "", f"/// A row of `{table}`.",
             "#[derive(Queryable, Selectable, Identifiable, Associations, Debug, Clone, PartialEq)]"
             if fks(model) else "#[derive(Queryable, Selectable, Identifiable, Debug, Clone, PartialEq)]",
             f"#[diesel(table_name = {table})]"]
    if is_join(model):
        pk = [f[0] for f in fields if "pk" in flags(f)]
        lines.append(f"#[diesel(primary_key({', '.join(pk)}))]")
    for fk, target, _ in fks(model):
        lines.append(f"#[diesel(belongs_to({target}, foreign_key = {fk}))]")
    lines += ["#[diesel(check_for_backend(diesel::pg::Pg))]", f"pub struct {name} {{"]
    if not is_join(model):
        lines.append("    pub id: i64,")
    for fname, kind, _ in fields:
        lines.append(f"    pub {fname}: {rust_ty(kind)},")
    lines += ["}", "", f"/// A new row of `{table}` (the database fills id and timestamps).",
              "#[derive(Insertable, Debug, Clone, Default)]", f"#[diesel(table_name = {table})]",
              f"pub struct New{name} {{"]
    insert_fields = [f for f in fields if not ({"created", "updated"} & set(flags(f)))]
    for fname, kind, _ in insert_fields:
        lines.append(f"    pub {fname}: {rust_ty(kind)},")
    lines.append("}")
    checks = []
    for f in insert_fields:
        opt = rust_ty(f[1]).startswith("Option")
        for fl in flags(f):
            acc = f"self.{f[0]}"
            if fl == "email":
                checks.append(f'if !{acc}.contains(\'@\') {{ return Err("{f[0]}: not an e-mail address"); }}')
            elif fl.startswith("len") and not opt:
                a, b = range_of(fl)
                low = f"{acc}.chars().count() < {a} || " if a != "0" else ""
                checks.append(f'if {low}{acc}.chars().count() > {b} {{ return Err("{f[0]}: length"); }}')
            elif fl.startswith("range") and not opt:
                a, b = range_of(fl)
                checks.append(f'if !({a}..={b}).contains(&{acc}) {{ return Err("{f[0]}: range"); }}')
    if checks:
        lines += ["", f"impl New{name} {{", "    /// Checks the field rules before an insert.",
                  "    pub fn validate(&self) -> Result<(), &'static str> {"]
        lines += ["        " + c for c in checks]
        lines += ["        Ok(())", "    }", "}"]
    if model == CHANGED:
        lines += ["", "/// A new open task of a project.",
                  "pub fn new_task(project_id: i64, title: &str) -> NewTask {",
                  "    NewTask { project_id, title: title.into(), status: \"open\".into(), priority: 2, ..Default::default() }",
                  "}"]
    lines.insert(0, "#![allow(unused_imports)]")
    return "\n".join(lines) + "\n"


DIESEL_MAIN = """//! The queries; the models are in their own modules, one file per model.
#![allow(dead_code, unused_imports)]

mod models;
mod schema;
use diesel::prelude::*;
use models::*;
use schema::*;

fn queries(conn: &mut PgConnection) -> Result<(), Box<dyn std::error::Error>> {
    // find by id
    let task: Task = tasks::table.find(1i64).select(Task::as_select()).first(conn)?;
    // filtered, ordered list
    let open: Vec<Task> = tasks::table
        .filter(tasks::project_id.eq(task.project_id).and(tasks::status.eq("open")).and(tasks::priority.ge(2)))
        .order(tasks::created_at.desc())
        .limit(20)
        .select(Task::as_select())
        .load(conn)?;
    // relation loads: 1:N, nested 1:N, N:M, 1:1
    let projects: Vec<Project> = projects::table.filter(projects::org_id.eq(1i64)).select(Project::as_select()).load(conn)?;
    let project_tasks: Vec<Task> = Task::belonging_to(&projects).select(Task::as_select()).load(conn)?;
    let comments: Vec<Comment> = Comment::belonging_to(&project_tasks).select(Comment::as_select()).load(conn)?;
    let comments_per_task = comments.grouped_by(&project_tasks);
    let tasks_per_project = project_tasks.grouped_by(&projects);
    let tagged: Vec<Task> = tasks::table.limit(10).select(Task::as_select()).load(conn)?;
    let tags: Vec<(TaskTag, Tag)> = TaskTag::belonging_to(&tagged)
        .inner_join(tags::table)
        .select((TaskTag::as_select(), Tag::as_select()))
        .load(conn)?;
    let tags_per_task = tags.grouped_by(&tagged);
    let assignee_ids: Vec<i64> = tagged.iter().filter_map(|t| t.assignee_id).collect();
    let assignees: Vec<User> = users::table.filter(users::id.eq_any(assignee_ids)).select(User::as_select()).load(conn)?;
    let users: Vec<User> = users::table.select(User::as_select()).load(conn)?;
    let profiles: Vec<Profile> = Profile::belonging_to(&users).select(Profile::as_select()).load(conn)?;
    let teams: Vec<(TeamMember, Team)> = TeamMember::belonging_to(&users)
        .inner_join(teams::table)
        .select((TeamMember::as_select(), Team::as_select()))
        .load(conn)?;
    let profile_per_user = profiles.grouped_by(&users);
    let teams_per_user = teams.grouped_by(&users);
    let invoices: Vec<(Invoice, Customer)> = invoices::table
        .inner_join(customers::table)
        .filter(invoices::status.eq("open"))
        .select((Invoice::as_select(), Customer::as_select()))
        .load(conn)?;
    let plain: Vec<Invoice> = invoices.iter().map(|(i, _)| i.clone()).collect();
    let lines: Vec<InvoiceLine> = InvoiceLine::belonging_to(&plain).select(InvoiceLine::as_select()).load(conn)?;
    let lines_per_invoice = lines.grouped_by(&plain);
    // insert (validated), update
    let new_task = models::task::new_task(task.project_id, "Write the report");
    new_task.validate()?;
    let new: Task = diesel::insert_into(tasks::table).values(&new_task).returning(Task::as_returning()).get_result(conn)?;
    let done: Task = diesel::update(tasks::table.find(new.id))
        .set(tasks::status.eq("done"))
        .returning(Task::as_returning())
        .get_result(conn)?;
    let new_user = NewUser { org_id: 1, email: "ada@example.com".into(), name: "Ada".into(), ..Default::default() };
    new_user.validate()?;
    let user: User = diesel::insert_into(users::table).values(&new_user).returning(User::as_returning()).get_result(conn)?;
    println!(
        "{} {} {} {} {} {} {} {} {} {} {} {}",
        open.len(), tasks_per_project.len(), comments_per_task.len(), tags_per_task.len(), assignees.len(),
        profile_per_user.len(), teams_per_user.len(), lines_per_invoice.len(), invoices.len(), new.id, done.status, user.id
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().count() > 99 {
        let mut conn = PgConnection::establish(&std::env::var("DATABASE_URL")?)?;
        queries(&mut conn)?;
    }
    println!("Diesel app: 20 models");
    Ok(())
}
"""


def models_mod(new_structs=False):
    """`models/mod.rs`: one module per model, each model (and its `New..` struct) re-exported."""
    out = [f"pub mod {snake(name)};" for name, _, _ in MODELS]
    out.append("")
    for name, _, _ in MODELS:
        out.append(f"pub use {snake(name)}::{{{name}, New{name}}};" if new_structs else f"pub use {snake(name)}::{name};")
    return "\n".join(out) + "\n"

//! Steps: one change to the schema each, store-neutral — what [`diff`](super::diff) produces
//! and [`render`](super::render) writes as SQL (and `mongo` as MongoDB commands).
//!
//! Every step knows its inverse ([`Step::inverse`], what `down` runs), whether it destroys
//! data ([`Step::is_destructive`]), what its inverse cannot bring back ([`Step::loss`]) and
//! when it may fail on existing rows ([`Step::caveat`]).

use super::snapshot::{
    CheckSnapshot, ColumnSnapshot, ForeignKeySnapshot, IndexSnapshot, LayoutSnapshot, TableSnapshot, TypeSnapshot,
};

/// One change to the schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A new table, with its indexes.
    CreateTable {
        /// Its full description.
        table: TableSnapshot,
    },
    /// A table that is gone (destructive).
    DropTable {
        /// Its full description (what `down` recreates).
        table: TableSnapshot,
    },
    /// A table renamed (`#[model(renamed_from = "..")]`); its data stays.
    RenameTable {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
        /// The table as it was, for renaming its named constraints along.
        old: TableSnapshot,
    },
    /// A new column.
    AddColumn {
        /// The table.
        table: String,
        /// The column.
        column: ColumnSnapshot,
    },
    /// A column that is gone (destructive).
    DropColumn {
        /// The table.
        table: String,
        /// The column as it was.
        column: ColumnSnapshot,
    },
    /// A column renamed (`#[model(renamed_from = "..")]` on the field); its data stays.
    RenameColumn {
        /// The table.
        table: String,
        /// The old name.
        from: String,
        /// The new name.
        to: String,
        /// The column before the rename, with the CHECKs kept across it (they are renamed too).
        column: ColumnSnapshot,
    },
    /// A column's type, nullability, default or generation changed (its CHECKs are separate
    /// steps).
    AlterColumn {
        /// The table.
        table: String,
        /// The column before.
        from: ColumnSnapshot,
        /// The column after.
        to: ColumnSnapshot,
    },
    /// The primary key changed.
    SetPrimaryKey {
        /// The table.
        table: String,
        /// The key columns before.
        from: Vec<String>,
        /// The key columns after.
        to: Vec<String>,
    },
    /// A new index (unique or not).
    AddIndex {
        /// The table.
        table: String,
        /// The index.
        index: IndexSnapshot,
    },
    /// An index that is gone.
    DropIndex {
        /// The table.
        table: String,
        /// The index as it was.
        index: IndexSnapshot,
    },
    /// The same index under a new name (its table or columns were renamed).
    RenameIndex {
        /// The table.
        table: String,
        /// The index before.
        from: IndexSnapshot,
        /// The index after.
        to: IndexSnapshot,
    },
    /// A new `#[validate]` CHECK constraint.
    AddCheck {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The column's type (the CHECK expression depends on it).
        ty: TypeSnapshot,
        /// The rule.
        check: CheckSnapshot,
    },
    /// A new foreign key (`belongs_to`).
    AddForeignKey {
        /// The referring table.
        table: String,
        /// The foreign key.
        fk: ForeignKeySnapshot,
    },
    /// A foreign key that is gone.
    DropForeignKey {
        /// The referring table.
        table: String,
        /// The foreign key as it was.
        fk: ForeignKeySnapshot,
    },
    /// A CHECK constraint that is gone.
    DropCheck {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The column's type.
        ty: TypeSnapshot,
        /// The rule.
        check: CheckSnapshot,
    },
    /// The table's Citus layout changed (`#[model(distributed_by = ..)]`, `colocate_with` or
    /// `#[model(reference)]` added, removed or changed): on a Citus cluster the table is
    /// distributed, made a reference table, given a new distribution column or colocation, or
    /// made local again, with its rows. Nothing happens on PostgreSQL without Citus, SQLite or
    /// MongoDB.
    ChangeLayout {
        /// The table.
        table: String,
        /// The layout before.
        from: LayoutSnapshot,
        /// The layout after.
        to: LayoutSnapshot,
    },
}

impl Step {
    /// The table the step works on (its new name, for a rename).
    pub fn table(&self) -> &str {
        match self {
            Step::CreateTable { table } | Step::DropTable { table } => &table.table,
            Step::RenameTable { to, .. } => to,
            Step::AddColumn { table, .. }
            | Step::DropColumn { table, .. }
            | Step::RenameColumn { table, .. }
            | Step::AlterColumn { table, .. }
            | Step::SetPrimaryKey { table, .. }
            | Step::AddIndex { table, .. }
            | Step::DropIndex { table, .. }
            | Step::RenameIndex { table, .. }
            | Step::AddCheck { table, .. }
            | Step::DropCheck { table, .. }
            | Step::AddForeignKey { table, .. }
            | Step::DropForeignKey { table, .. }
            | Step::ChangeLayout { table, .. } => table,
        }
    }

    /// The step that undoes this one.
    pub fn inverse(&self) -> Step {
        match self.clone() {
            Step::CreateTable { table } => Step::DropTable { table },
            Step::DropTable { table } => Step::CreateTable { table },
            Step::RenameTable { from, to, old } => {
                let mut renamed = old;
                renamed.table.clone_from(&to);
                Step::RenameTable { from: to, to: from, old: renamed }
            }
            Step::AddColumn { table, column } => Step::DropColumn { table, column },
            Step::DropColumn { table, column } => Step::AddColumn { table, column },
            Step::RenameColumn { table, from, to, column } => {
                let column = ColumnSnapshot { name: to.clone(), ..column };
                Step::RenameColumn { table, from: to, to: from, column }
            }
            Step::AlterColumn { table, from, to } => Step::AlterColumn { table, from: to, to: from },
            Step::SetPrimaryKey { table, from, to } => Step::SetPrimaryKey { table, from: to, to: from },
            Step::AddIndex { table, index } => Step::DropIndex { table, index },
            Step::DropIndex { table, index } => Step::AddIndex { table, index },
            Step::RenameIndex { table, from, to } => Step::RenameIndex { table, from: to, to: from },
            Step::AddCheck { table, column, ty, check } => Step::DropCheck { table, column, ty, check },
            Step::DropCheck { table, column, ty, check } => Step::AddCheck { table, column, ty, check },
            Step::AddForeignKey { table, fk } => Step::DropForeignKey { table, fk },
            Step::DropForeignKey { table, fk } => Step::AddForeignKey { table, fk },
            Step::ChangeLayout { table, from, to } => Step::ChangeLayout { table, from: to, to: from },
        }
    }

    /// Whether applying the step destroys data: dropping a table or column, or narrowing a
    /// column's type. Such steps run only with explicit consent. A change of layout is not
    /// destructive: Citus moves the rows with the table.
    pub fn is_destructive(&self) -> bool {
        match self {
            Step::DropTable { .. } | Step::DropColumn { .. } => true,
            Step::AlterColumn { from, to, .. } => !widens(&from.ty.without_null(), &to.ty.without_null()),
            _ => false,
        }
    }

    /// What is lost when this step is applied and then undone: the inverse recreates the
    /// structure, never the data.
    pub fn loss(&self) -> Option<String> {
        match self {
            Step::DropTable { table } => Some(format!("the rows of table {:?} (down recreates it empty)", table.table)),
            Step::DropColumn { table, column } => Some(format!(
                "the values of column {:?}.{:?} (down re-adds the column{})",
                table,
                column.name,
                if column.ty.nullable || column.default.is_some() {
                    " with NULLs or its default"
                } else {
                    "; it is NOT NULL without a default, so down fails while the table has rows"
                }
            )),
            Step::AlterColumn { table, from, to } if self.is_destructive() => Some(format!(
                "values of {table:?}.{:?} changed by converting {} to {}",
                to.name,
                from.ty.describe(),
                to.ty.describe()
            )),
            _ => None,
        }
    }

    /// When the step may fail on existing data (it then fails as a whole: the migration's
    /// transaction rolls back).
    pub fn caveat(&self) -> Option<&'static str> {
        match self {
            Step::AddColumn { column, .. }
                if !column.ty.nullable && column.default.is_none() && column.auto.is_none() =>
            {
                Some("a NOT NULL column without a default: fails if the table has rows")
            }
            Step::AlterColumn { from, to, .. } if from.ty.nullable && !to.ty.nullable => {
                Some("SET NOT NULL: fails if the column holds NULLs")
            }
            Step::AlterColumn { from, to, .. } if !widens(&from.ty.without_null(), &to.ty.without_null()) => {
                Some("a type conversion: fails if a stored value does not convert")
            }
            Step::AddIndex { index, .. } if index.unique => Some("a unique index: fails on duplicate values"),
            Step::AddCheck { .. } => Some("a CHECK: fails if a stored row breaks it"),
            Step::SetPrimaryKey { .. } => Some("a new primary key: fails on duplicate or NULL values"),
            Step::AddForeignKey { .. } => Some("a foreign key: fails if a row refers to no row"),
            Step::ChangeLayout { .. } => Some(
                "on a Citus cluster this rewrites the table across the nodes (its rows are copied into new \
                 shards or back to the coordinator): on a large table it takes time and locks the table until \
                 the migration commits",
            ),
            _ => None,
        }
    }

    /// One line saying what the step does, for SQL comments and `status`.
    pub fn describe(&self) -> String {
        match self {
            Step::CreateTable { table } => format!("create table {:?}", table.table),
            Step::DropTable { table } => format!("drop table {:?}", table.table),
            Step::RenameTable { from, to, .. } => format!("rename table {from:?} to {to:?}"),
            Step::AddColumn { table, column } => {
                format!("add column {table:?}.{:?} {}", column.name, column.ty.describe())
            }
            Step::DropColumn { table, column } => format!("drop column {table:?}.{:?}", column.name),
            Step::RenameColumn { table, from, to, .. } => format!("rename column {table:?}.{from:?} to {to:?}"),
            Step::AlterColumn { table, from, to } => {
                format!("alter column {table:?}.{:?}: {}", to.name, changes(from, to))
            }
            Step::SetPrimaryKey { table, from, to } => {
                format!("change the primary key of {table:?} from ({}) to ({})", from.join(", "), to.join(", "))
            }
            Step::AddIndex { table, index } => format!(
                "add {}index {:?} on {table:?} ({})",
                if index.unique { "unique " } else { "" },
                index.name,
                index.columns.join(", ")
            ),
            Step::DropIndex { table, index } => format!("drop index {:?} on {table:?}", index.name),
            Step::RenameIndex { table, from, to } => {
                format!("rename index {:?} on {table:?} to {:?}", from.name, to.name)
            }
            Step::AddCheck { table, column, check, .. } => {
                format!("add check {:?}", check.constraint_name(table, column))
            }
            Step::DropCheck { table, column, check, .. } => {
                format!("drop check {:?}", check.constraint_name(table, column))
            }
            Step::AddForeignKey { table, fk } => format!(
                "add foreign key {:?}: {table:?} ({}) -> {:?} ({}) on delete {} on update {}",
                fk.name,
                fk.columns.join(", "),
                fk.references,
                fk.referenced_columns.join(", "),
                fk.on_delete,
                fk.on_update
            ),
            Step::DropForeignKey { table, fk } => format!("drop foreign key {:?} on {table:?}", fk.name),
            Step::ChangeLayout { table, from, to } => {
                format!("change the Citus layout of {table:?} from {} to {}", from.describe(), to.describe())
            }
        }
    }
}

/// What changed between two versions of a column, in words.
fn changes(from: &ColumnSnapshot, to: &ColumnSnapshot) -> String {
    let mut out = Vec::new();
    if from.ty.without_null() != to.ty.without_null() {
        out.push(format!("type {} -> {}", from.ty.without_null().describe(), to.ty.without_null().describe()));
    }
    if from.ty.nullable != to.ty.nullable {
        out.push(if to.ty.nullable { "drop NOT NULL".to_owned() } else { "set NOT NULL".to_owned() });
    }
    if from.default != to.default || from.auto != to.auto {
        out.push(format!("default {} -> {}", default_text(from), default_text(to)));
    }
    if from.generated != to.generated {
        out.push(if to.generated { "add identity".to_owned() } else { "drop identity".to_owned() });
    }
    out.join(", ")
}

/// A column's default, in words.
fn default_text(c: &ColumnSnapshot) -> String {
    use super::snapshot::DefaultSnapshot;
    match (&c.default, c.auto) {
        (Some(DefaultSnapshot::Int(n)), _) => n.to_string(),
        (Some(DefaultSnapshot::Float(x)), _) => format!("{x:?}"),
        (Some(DefaultSnapshot::Bool(b)), _) => b.to_string(),
        (Some(DefaultSnapshot::Str(s)), _) => format!("{s:?}"),
        (None, Some(_)) => "now".to_owned(),
        (None, None) => "none".to_owned(),
    }
}

/// Whether converting `from` to `to` keeps every value exactly (both non-null forms).
pub fn widens(from: &TypeSnapshot, to: &TypeSnapshot) -> bool {
    if from == to {
        return true;
    }
    if from.array != to.array {
        return false;
    }
    let (a, b) = (from.scalar.as_str(), to.scalar.as_str());
    match (a, b) {
        ("enum", "enum") => from.variants.iter().all(|v| to.variants.contains(v)),
        ("enum", "text") => true,
        ("i16", "i32" | "i64" | "f32" | "f64" | "decimal") => true,
        ("i32", "i64" | "f64" | "decimal") => true,
        ("i64", "decimal") => true,
        ("f32", "f64") => true,
        (_, "text") => !matches!(a, "json" | "f32" | "f64"),
        _ => false,
    }
}

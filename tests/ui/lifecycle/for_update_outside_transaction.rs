use polystore::prelude::*;

#[derive(Model)]
pub struct Job {
    #[model(primary_key)]
    pub id: i64,
    pub status: String,
}

async fn pick(db: &Db) -> polystore::Result<Vec<Job>> {
    // Row locks live until the transaction ends: on a pooled handle they would end at once.
    Job::query().filter(Job::STATUS.eq("queued")).for_update().skip_locked().all(db).await
}

fn main() {
    let _ = pick;
}
